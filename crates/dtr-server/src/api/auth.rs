//! Who is calling: HTTP Basic credentials checked against the accounts in the metadata database,
//! where the secret is either the account's password (argon2id hash) or one of its access tokens
//! (SHA-256 of a 256-bit random value; the original accepts `-u user:accesstoken` the same way).
//! Also the endpoints that manage accounts and access tokens.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::password::{hash as hash_password, verify as password_matches};
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use data_encoding::{BASE64, HEXLOWER};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::error::{ApiError, ApiJson, ApiResult};
use super::names;
use super::Api;

/// An authenticated account, or nobody.
#[derive(Clone, Debug)]
pub enum Caller {
    Anonymous,
    Account(Account),
}

#[derive(Clone, Debug)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub admin: bool,
    /// Authenticated with an access token rather than the password: such a caller may not
    /// change a password or create tokens ([`Account::require_password`]).
    pub by_token: bool,
}

impl Account {
    /// 403 `PASSWORD_REQUIRED` for a caller that authenticated with an access token: a token
    /// that could change the password or mint more tokens would be a permanent takeover.
    pub fn require_password(&self, what: &str) -> ApiResult<()> {
        if self.by_token {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "PASSWORD_REQUIRED",
                format!("{what} needs {}'s password, not an access token", self.name),
            ));
        }
        Ok(())
    }
}

impl Caller {
    pub fn account(&self) -> ApiResult<&Account> {
        match self {
            Caller::Account(a) => Ok(a),
            Caller::Anonymous => Err(ApiError::unauthorized(
                "log in: this endpoint needs an account",
            )),
        }
    }

    pub fn require_admin(&self) -> ApiResult<&Account> {
        let a = self.account()?;
        if a.admin {
            Ok(a)
        } else {
            Err(ApiError::forbidden(format!(
                "{} is not an administrator",
                a.name
            )))
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Caller::Account(a) => &a.name,
            Caller::Anonymous => "",
        }
    }
}

fn token_digest(token: &str) -> String {
    HEXLOWER.encode(&Sha256::digest(token.as_bytes()))
}

/// The `user:secret` of a Basic `Authorization` header, if there is one.
fn basic_credentials(parts: &Parts) -> ApiResult<Option<(String, String)>> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("unreadable Authorization header"))?;
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Err(ApiError::unauthorized(
            "use HTTP Basic authentication (user:password or user:token)",
        ));
    };
    let decoded = BASE64
        .decode(encoded.trim().as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::unauthorized("unreadable Basic credentials"))?;
    let (user, secret) = decoded
        .split_once(':')
        .ok_or_else(|| ApiError::unauthorized("Basic credentials need user:password"))?;
    Ok(Some((user.to_string(), secret.to_string())))
}

/// The client's address: the one nginx saw (`X-Real-IP`, which nginx always overwrites), or the
/// connection's peer for a caller on the overlay.
fn client_address(parts: &Parts) -> String {
    parts
        .headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Runs argon2 (`work`) off the async workers, in one of the api's few turns for it
/// ([`super::limits`]). For a login (`account`), the account's lock is checked again once the
/// turn comes: failures of the requests ahead in line may have locked it meanwhile.
async fn argon2<T: Send + 'static>(
    api: &Api,
    account: Option<&str>,
    work: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    let _turn = api.logins.turn().await?;
    if let Some(account) = account {
        api.logins.check_account(account)?;
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::dependency("the password check", e))
}

/// Checks `user` / `secret` (password or access token) for a client at `address`. Wrong
/// credentials are a 401 that does not say which part was wrong; too many of them a 429
/// ([`super::limits`]).
pub async fn authenticate(
    api: &Api,
    user: &str,
    secret: &str,
    address: &str,
) -> ApiResult<Account> {
    let wrong = || ApiError::unauthorized("wrong user name, password or token");
    api.logins.check_address(address)?;
    let db = api.db().await?;
    let row = db
        .query_opt(
            "SELECT id, name, password_hash, is_admin FROM accounts WHERE name = $1",
            &[&user],
        )
        .await?;
    let Some(row) = row else {
        api.logins.check_account(user)?;
        // spend the same time as a real check, so that names cannot be probed by timing
        let secret = secret.to_string();
        let _ = argon2(api, Some(user), move || {
            password_matches(&secret, DUMMY_HASH)
        })
        .await?;
        api.logins.failed(user, address);
        return Err(wrong());
    };
    let mut account = Account {
        id: row.get(0),
        name: row.get(1),
        admin: row.get(3),
        by_token: false,
    };
    let digest = token_digest(secret);
    let token = db
        .query_opt(
            "SELECT id FROM api_tokens WHERE account_id = $1 AND token_sha256 = $2
               AND (expires_at IS NULL OR expires_at > now())",
            &[&account.id, &digest],
        )
        .await?;
    if let Some(token) = token {
        // best effort: without a primary (reads only) the token still authenticates
        let id: i64 = token.get(0);
        let _ = db
            .execute(
                "UPDATE api_tokens SET last_used = now() WHERE id = $1",
                &[&id],
            )
            .await;
        account.by_token = true;
        return Ok(account);
    }
    api.logins.check_account(user)?;
    let phc: String = row.get(2);
    if api.logins.remembered(user, secret, &phc) {
        return Ok(account);
    }
    // the same credentials arriving together are checked once
    let flight = api.logins.flight(user, secret, &phc);
    let _one_check = flight.lock().await;
    if api.logins.remembered(user, secret, &phc) {
        return Ok(account);
    }
    let (given, stored) = (secret.to_string(), phc.clone());
    if argon2(api, Some(user), move || password_matches(&given, &stored)).await? {
        api.logins.remember(user, secret, &phc);
        Ok(account)
    } else {
        api.logins.failed(user, address);
        Err(wrong())
    }
}

/// A valid argon2id hash of a random password, for the unknown-user path.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0m4ieU6Dk8c1N2Xz0Bv0Q3cGqkXhN8F7Vb6uW+4Ir2U";

impl FromRequestParts<Arc<Api>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> ApiResult<Self> {
        match basic_credentials(parts)? {
            None => Ok(Caller::Anonymous),
            Some((user, secret)) => {
                let address = client_address(parts);
                Ok(Caller::Account(
                    authenticate(api, &user, &secret, &address).await?,
                ))
            }
        }
    }
}

/// An authenticated account: rejects before the request body is read, so that a caller without
/// the right gets 401/403 whatever it sent.
pub struct Authenticated(pub Account);

/// An administrator, checked like `Authenticated`.
pub struct Admin(pub Account);

impl FromRequestParts<Arc<Api>> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> ApiResult<Self> {
        let caller = Caller::from_request_parts(parts, api).await?;
        Ok(Authenticated(caller.account()?.clone()))
    }
}

impl FromRequestParts<Arc<Api>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> ApiResult<Self> {
        let caller = Caller::from_request_parts(parts, api).await?;
        Ok(Admin(caller.require_admin()?.clone()))
    }
}

/// Creates the first administrator from the hand-over file phase 2 wrote (`/ca/api/admin.json`:
/// name and argon2 hash, never the password) when there is no account yet.
pub async fn create_initial_admin(
    db: &tokio_postgres::Client,
    handover: &str,
) -> crate::Result<bool> {
    #[derive(Deserialize)]
    struct Handover {
        username: String,
        password_hash: String,
    }
    let h: Handover = serde_json::from_str(handover).map_err(|e| crate::Error::BadFile {
        what: "the admin hand-over file".into(),
        reason: e.to_string(),
    })?;
    let n = db
        .execute(
            "INSERT INTO accounts (name, password_hash, is_admin)
             SELECT $1, $2, true WHERE NOT EXISTS (SELECT 1 FROM accounts)",
            &[&h.username, &h.password_hash],
        )
        .await
        .map_err(|e| crate::Error::Database {
            context: "create the admin account".into(),
            message: e.to_string(),
        })?;
    Ok(n == 1)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewAccount {
    name: String,
    password: String,
    #[serde(default)]
    is_admin: bool,
}

async fn create_account(
    State(api): State<Arc<Api>>,
    Admin(admin): Admin,
    ApiJson(new): ApiJson<NewAccount>,
) -> ApiResult<Response> {
    names::check_new_account(&new.name)?;
    if new.password.chars().count() < 8 {
        return Err(ApiError::bad_request(
            "INVALID_PASSWORD",
            "passwords need at least 8 characters",
        ));
    }
    let password = new.password;
    let phc = argon2(&api, None, move || hash_password(&password)).await?;
    let db = api.db().await?;
    let row = db
        .query_opt(
            "INSERT INTO accounts (name, password_hash, is_admin) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING RETURNING id",
            &[&new.name, &phc, &new.is_admin],
        )
        .await?
        .ok_or_else(|| {
            ApiError::conflict("ACCOUNT_EXISTS", format!("account {} exists", new.name))
        })?;
    let id: i64 = row.get(0);
    super::events::record(
        &db,
        &admin.name,
        "account.create",
        &format!("account:{}", new.name),
        json!({"isAdmin": new.is_admin}),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "name": new.name, "isAdmin": new.is_admin})),
    )
        .into_response())
}

async fn list_accounts(
    State(api): State<Arc<Api>>,
    caller: Caller,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require_admin()?;
    let rows = api
        .db()
        .await?
        .query("SELECT id, name, is_admin FROM accounts ORDER BY name", &[])
        .await?;
    let accounts: Vec<_> = rows
        .iter()
        .map(|r| json!({"id": r.get::<_, i64>(0), "name": r.get::<_, String>(1), "isAdmin": r.get::<_, bool>(2)}))
        .collect();
    Ok(Json(json!({"accounts": accounts})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewToken {
    token_label: String,
    /// After how long the token stops working; never when absent (the original's tokens).
    #[serde(default)]
    expires_in_seconds: Option<i64>,
}

/// The longest lifetime `expiresInSeconds` may ask for: ten years.
const TOKEN_EXPIRY_MAX: i64 = 10 * 365 * 24 * 3600;

async fn create_token(
    State(api): State<Arc<Api>>,
    Authenticated(account): Authenticated,
    ApiJson(new): ApiJson<NewToken>,
) -> ApiResult<Response> {
    account.require_password("creating an access token")?;
    if new.token_label.is_empty() || new.token_label.len() > 100 {
        return Err(ApiError::bad_request(
            "INVALID_LABEL",
            "tokenLabel: 1 to 100 characters",
        ));
    }
    if new
        .expires_in_seconds
        .is_some_and(|s| !(1..=TOKEN_EXPIRY_MAX).contains(&s))
    {
        return Err(ApiError::bad_request(
            "INVALID_EXPIRY",
            format!("expiresInSeconds: 1 to {TOKEN_EXPIRY_MAX} (ten years), or absent for a token that does not expire"),
        ));
    }
    let token = HEXLOWER.encode(&rand::random::<[u8; 32]>());
    let db = api.db().await?;
    let row = db
        .query_one(
            &format!(
                "INSERT INTO api_tokens (account_id, label, token_sha256, expires_at)
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4::bigint::float8))
                 RETURNING id, {}",
                crate::db::utc_seconds("expires_at")
            ),
            &[
                &account.id,
                &new.token_label,
                &token_digest(&token),
                &new.expires_in_seconds,
            ],
        )
        .await?;
    let id: i64 = row.get(0);
    let expires_at: Option<String> = row.get(1);
    super::events::record(
        &db,
        &account.name,
        "token.create",
        &format!("token:{id}"),
        json!({"tokenLabel": new.token_label, "expiresAt": expires_at}),
    )
    .await?;
    // the only time the token is shown
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": id, "tokenLabel": new.token_label, "token": token,
                    "expiresAt": expires_at}),
        ),
    )
        .into_response())
}

async fn list_tokens(
    State(api): State<Arc<Api>>,
    caller: Caller,
) -> ApiResult<Json<serde_json::Value>> {
    let account = caller.account()?;
    let rows = api
        .db()
        .await?
        .query(
            &format!(
                "SELECT id, label, to_char(created_at, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                        coalesce(to_char(last_used, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''), {}
                 FROM api_tokens WHERE account_id = $1 ORDER BY id",
                crate::db::utc_seconds("expires_at")
            ),
            &[&account.id],
        )
        .await?;
    let tokens: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({"id": r.get::<_, i64>(0), "tokenLabel": r.get::<_, String>(1),
                   "createdAt": r.get::<_, String>(2), "lastUsed": r.get::<_, String>(3),
                   "expiresAt": r.get::<_, Option<String>>(4)})
        })
        .collect();
    Ok(Json(json!({"tokens": tokens})))
}

async fn delete_token(
    State(api): State<Arc<Api>>,
    Authenticated(account): Authenticated,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let db = api.db().await?;
    let n = db
        .execute(
            "DELETE FROM api_tokens WHERE id = $1 AND (account_id = $2 OR $3)",
            &[&id, &account.id, &account.admin],
        )
        .await?;
    if n == 0 {
        return Err(ApiError::not_found(
            "NO_SUCH_TOKEN",
            format!("no token {id} of yours"),
        ));
    }
    super::events::record(
        &db,
        &account.name,
        "token.delete",
        &format!("token:{id}"),
        json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AccountChange {
    password: Option<String>,
    is_admin: Option<bool>,
    /// Keep the account's access tokens when its password changes (they are revoked otherwise).
    #[serde(default)]
    keep_tokens: bool,
}

/// Changes a password (one's own, or anyone's as administrator) or the administrator flag
/// (administrators only). The last administrator cannot lose the flag. A new password needs the
/// caller's password (not a token) and revokes the account's access tokens unless `keepTokens`.
async fn update_account(
    State(api): State<Arc<Api>>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
    ApiJson(change): ApiJson<AccountChange>,
) -> ApiResult<Json<serde_json::Value>> {
    if caller.name != name && !caller.admin {
        return Err(ApiError::forbidden(format!(
            "{} may not change account {name}",
            caller.name
        )));
    }
    if change.is_admin.is_some() && !caller.admin {
        return Err(ApiError::forbidden(
            "only administrators change the administrator flag",
        ));
    }
    if change.password.is_some() {
        caller.require_password("changing a password")?;
    }
    let phc = match change.password {
        Some(p) if p.chars().count() < 8 => {
            return Err(ApiError::bad_request(
                "INVALID_PASSWORD",
                "passwords need at least 8 characters",
            ))
        }
        Some(p) => Some(argon2(&api, None, move || hash_password(&p)).await?),
        None => None,
    };
    let mut client = api.db_exclusive().await?;
    let tx = client.transaction().await?;
    // serialises changes of the administrator flag
    tx.execute("LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE", &[])
        .await?;
    let row = tx
        .query_opt(
            "UPDATE accounts SET password_hash = coalesce($2, password_hash), is_admin = coalesce($3, is_admin)
             WHERE name = $1 RETURNING id, is_admin",
            &[&name, &phc, &change.is_admin],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("NO_SUCH_ACCOUNT", format!("no account {name}")))?;
    an_admin_remains(&tx, &name).await?;
    let id: i64 = row.get(0);
    let revoked = if phc.is_some() && !change.keep_tokens {
        tx.execute("DELETE FROM api_tokens WHERE account_id = $1", &[&id])
            .await?
    } else {
        0
    };
    let detail =
        json!({"password": phc.is_some(), "isAdmin": change.is_admin, "revokedTokens": revoked});
    super::events::record_in(
        &tx,
        &caller.name,
        "account.update",
        &format!("account:{name}"),
        detail,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(
        json!({"id": id, "name": name, "isAdmin": row.get::<_, bool>(1), "revokedTokens": revoked}),
    ))
}

/// Refuses a change (inside its transaction, accounts locked) that left no administrator.
async fn an_admin_remains(tx: &tokio_postgres::Transaction<'_>, name: &str) -> ApiResult<()> {
    let admins: i64 = tx
        .query_one("SELECT count(*) FROM accounts WHERE is_admin", &[])
        .await?
        .get(0);
    if admins == 0 {
        return Err(ApiError::conflict(
            "LAST_ADMIN",
            format!("{name} is the last administrator"),
        ));
    }
    Ok(())
}

/// Deletes an account and its access tokens (administrators; never the last administrator).
/// Its repositories stay, owned by its namespace.
async fn delete_account(
    State(api): State<Arc<Api>>,
    Admin(admin): Admin,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let mut client = api.db_exclusive().await?;
    let tx = client.transaction().await?;
    tx.execute("LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE", &[])
        .await?;
    let n = tx
        .execute("DELETE FROM accounts WHERE name = $1", &[&name])
        .await?;
    if n == 0 {
        return Err(ApiError::not_found(
            "NO_SUCH_ACCOUNT",
            format!("no account {name}"),
        ));
    }
    an_admin_remains(&tx, &name).await?;
    super::events::record_in(
        &tx,
        &admin.name,
        "account.delete",
        &format!("account:{name}"),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/v0/accounts", get(list_accounts).post(create_account))
        .route(
            "/api/v0/accounts/{name}",
            axum::routing::patch(update_account).delete(delete_account),
        )
        .route("/api/v0/api_tokens", get(list_tokens).post(create_token))
        .route("/api/v0/api_tokens/{id}", delete(delete_token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_costs_a_real_verification() {
        // it parses, so the unknown-user path runs argon2 like a known one
        assert!(argon2::password_hash::PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!password_matches("x", DUMMY_HASH));
    }
}
