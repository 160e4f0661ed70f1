//! nginx: TLS front end on the replica's published HTTP/HTTPS ports.

use dtr_core::component::{Component, NGINX_HTTPS_PORT, NGINX_HTTP_PORT};
use dtr_core::contract::env;

use crate::plan::{ContainerSpec, PortSpec, ReplicaContext};

pub fn spec(ctx: &ReplicaContext) -> ContainerSpec {
    let mut s = ctx.base_spec(Component::Nginx);
    s.ports = vec![
        PortSpec {
            host: ctx.http_port,
            container: NGINX_HTTP_PORT,
        },
        PortSpec {
            host: ctx.https_port,
            container: NGINX_HTTPS_PORT,
        },
    ];
    s.env
        .insert(env::HTTPS_PORT.into(), ctx.https_port.to_string());
    s
}
