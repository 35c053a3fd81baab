//! nginx with a generated config: the `stream` module for TCP, `http` with
//! `proxy_pass` to an upstream with `keepalive` for HTTP/1, and for HTTP/2
//! an h2c listener (`listen ... http2`, prior knowledge) in front of
//! `grpc_pass`, the only nginx module that speaks h2 to an upstream.
//! `worker_processes` matches ringside's shards; the master and every worker
//! count towards its CPU and memory.

use super::process::ProxyProcess;
use super::{free_port, ProxyMode, RunningTarget, TargetOptions};
use crate::workdir::WorkDir;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

/// Where Debian puts the dynamic stream module (package libnginx-mod-stream).
const STREAM_MODULE_DIRS: [&str; 2] = ["/usr/lib/nginx/modules", "/usr/share/nginx/modules"];

/// nginx 1.22 speaks h2c and gRPC upstream; nothing is known to be missing.
pub(super) fn h2_unsupported_reason() -> Option<String> {
    None
}

/// Whether nginx was built with the stream module as a dynamic module, and
/// if so where its `.so` is; `Err` when it is dynamic but not installed.
fn stream_module(nginx: &Path) -> Result<Option<std::path::PathBuf>, String> {
    let output = Command::new(nginx)
        .arg("-V")
        .output()
        .map_err(|e| format!("running {} -V: {e}", nginx.display()))?;
    let build = String::from_utf8_lossy(&output.stderr);
    if !build.contains("--with-stream=dynamic") {
        return Ok(None);
    }
    STREAM_MODULE_DIRS
        .iter()
        .map(|dir| Path::new(dir).join("ngx_stream_module.so"))
        .find(|path| path.exists())
        .map(Some)
        .ok_or_else(|| {
            "nginx's stream module is not installed (Debian: apt-get install libnginx-mod-stream)"
                .to_string()
        })
}

/// Why nginx cannot proxy opaque TCP here, if it cannot.
pub(super) fn tcp_unsupported_reason(nginx: &Path) -> Option<String> {
    stream_module(nginx).err()
}

fn config(
    workdir: &Path,
    options: &TargetOptions,
    listen: SocketAddr,
    origin: SocketAddr,
    mode: ProxyMode,
) -> anyhow::Result<String> {
    let dir = workdir.display();
    let workers = options.shards;
    let worker_connections = options.max_connections * 2 + 64;
    let fd_limit = options.fd_limit;
    let load_module = match mode {
        ProxyMode::Tcp => match stream_module(&options.nginx_bin).map_err(anyhow::Error::msg)? {
            Some(path) => format!("load_module {};\n", path.display()),
            None => String::new(),
        },
        _ => String::new(),
    };
    let body = match mode {
        ProxyMode::Tcp => format!(
            "stream {{\n    server {{\n        listen {listen} reuseport;\n        proxy_pass {origin};\n        \
             proxy_timeout 10m;\n    }}\n}}\n"
        ),
        ProxyMode::Http1 | ProxyMode::H2 => {
            let (listen_flags, location) = match mode {
                ProxyMode::H2 => (" http2", "grpc_pass grpc://origin;"),
                _ => ("", "proxy_pass http://origin;\n            proxy_http_version 1.1;\n            proxy_set_header Connection \"\";"),
            };
            format!(
                "http {{\n    access_log off;\n    client_body_temp_path {dir}/client_body;\n    \
                 proxy_temp_path {dir}/proxy;\n    fastcgi_temp_path {dir}/fastcgi;\n    \
                 uwsgi_temp_path {dir}/uwsgi;\n    scgi_temp_path {dir}/scgi;\n    \
                 keepalive_requests 100000000;\n    keepalive_timeout 10m;\n    \
                 upstream origin {{\n        server {origin};\n        keepalive 256;\n        \
                 keepalive_requests 100000000;\n    }}\n    \
                 server {{\n        listen {listen}{listen_flags} reuseport;\n        \
                 location / {{\n            {location}\n        }}\n    }}\n}}\n"
            )
        }
    };
    Ok(format!(
        "{load_module}daemon off;\nmaster_process on;\nworker_processes {workers};\nworker_rlimit_nofile {fd_limit};\n\
         pid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\n\
         events {{\n    worker_connections {worker_connections};\n    multi_accept on;\n}}\n{body}"
    ))
}

pub(super) fn start(
    options: &TargetOptions,
    origin: SocketAddr,
    mode: ProxyMode,
) -> anyhow::Result<RunningTarget> {
    let listen = free_port()?;
    let workdir = WorkDir::new("nginx")?;
    let config_path = workdir.write(
        "nginx.conf",
        &config(workdir.path(), options, listen, origin, mode)?,
    )?;
    let mut command = Command::new(&options.nginx_bin);
    command
        .arg("-p")
        .arg(workdir.path())
        .arg("-c")
        .arg(&config_path)
        .arg("-e")
        .arg(workdir.path().join("error.log"));
    let process = ProxyProcess::spawn("nginx", command, workdir)?;
    RunningTarget::ready(process, listen, |p| {
        p.wait_accepting(listen)?;
        p.wait_workers(options.shards)
    })
}
