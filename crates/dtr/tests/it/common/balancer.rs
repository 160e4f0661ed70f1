//! The tests' load balancer in front of several replicas.

use super::*;

/// nginx in front of the replicas' HTTPS ports, as a load balancer would be: round robin,
/// another replica tried when one refuses the connection or answers 502/503/504. It presents
/// the cluster's own certificate (made for the external URL it serves). Removed on drop.
pub struct Balancer {
    name: String,
    _dir: tempfile::TempDir,
}

impl Balancer {
    pub fn start(port: u16, first: &TestReplica, upstream_ports: &[u16]) -> Balancer {
        let pem = |f: &str| first.ca_volume_file(&format!("external/{f}"));
        let upstreams: Vec<String> = upstream_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        Balancer::start_to(port, (&pem("cert.pem"), &pem("key.pem")), &upstreams)
    }

    /// The same in front of `upstreams` (`address:port`), presenting `tls` (certificate chain
    /// and key, PEM).
    pub fn start_to(port: u16, tls: (&str, &str), upstreams: &[String]) -> Balancer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), format!("{}\n", tls.0)).unwrap();
        std::fs::write(dir.path().join("key.pem"), format!("{}\n", tls.1)).unwrap();
        let servers: String = upstreams
            .iter()
            .map(|u| format!("    server {u} max_fails=1 fail_timeout=2s;\n"))
            .collect();
        let conf = format!(
            "pid /tmp/lb.pid;\nerror_log stderr warn;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path /tmp/lb-body;\n  proxy_temp_path /tmp/lb-proxy;\n  upstream dtr {{\n{servers}  }}\n  server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate /lb/cert.pem;\n    ssl_certificate_key /lb/key.pem;\n    client_max_body_size 0;\n    location / {{\n      proxy_pass https://dtr;\n      proxy_http_version 1.1;\n      proxy_set_header Host $http_host;\n      proxy_buffering off;\n      proxy_request_buffering off;\n      proxy_read_timeout 300s;\n      proxy_next_upstream error timeout http_502 http_503 http_504;\n      proxy_next_upstream_tries 3;\n    }}\n  }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let name = format!("dtr-test-lb-{port}");
        let mount = format!("{}:/lb:ro", dir.path().display());
        let nginx = format!("registry/dtr-nginx:{}", dtr_core::version::VERSION);
        docker_ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "host",
            "--user",
            "0:0",
            "-v",
            &mount,
            "--entrypoint",
            "nginx",
            &nginx,
            "-c",
            "/lb/nginx.conf",
            "-g",
            "daemon off;",
        ]);
        // `docker run -d` returns before nginx listens: a client right after would be refused
        let balancer = Balancer { name, _dir: dir };
        wait_until(
            "the balancer to listen",
            std::time::Duration::from_secs(10),
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        balancer
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        docker(&["rm", "-f", &self.name]);
    }
}
