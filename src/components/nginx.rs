//! nginx: TLS front end on the replica's published HTTP/HTTPS ports.

use crate::components::Component;
use crate::plan::{ContainerSpec, PortSpec, ReplicaContext};

pub const HTTP_PORT: u16 = 8080;
pub const HTTPS_PORT: u16 = 8443;

pub fn spec(ctx: &ReplicaContext) -> ContainerSpec {
    let mut s = ctx.base_spec(Component::Nginx);
    s.ports = vec![
        PortSpec {
            host: ctx.http_port,
            container: HTTP_PORT,
        },
        PortSpec {
            host: ctx.https_port,
            container: HTTPS_PORT,
        },
    ];
    s.env
        .insert("DTR_HTTPS_PORT".into(), ctx.https_port.to_string());
    s
}
