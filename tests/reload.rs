//! Config reload with the built binary: routes added, changed and removed
//! by `POST /reload` and SIGHUP while connections run, refused files that
//! change nothing, and reloads under load that lose no request and no byte.

mod support;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use ::http::Request;
use support::clients::h2::{call, connect, runtime};
use support::*;

/// One `[[route]]` table, listening on a port the test holds (a reload
/// adds or removes a route by its address).
fn route(listen: &ReservedPort, upstreams: &[SocketAddr], protocol: &str) -> String {
    let upstreams: Vec<String> = upstreams.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "[[route]]\nlisten = \"{}\"\nupstreams = [{}]\nprotocol = \"{protocol}\"\n",
        listen.addr,
        upstreams.join(", ")
    )
}

/// A config of `shards` shards and `routes`.
fn config(shards: usize, routes: &[String]) -> String {
    format!("[runtime]\nshards = {shards}\n\n{}", routes.join("\n"))
}

/// Ringside started on the config file at `path`.
fn start_on(path: &TempPath) -> Ringside {
    Ringside::start(&["--config", path.as_str()])
}

fn rewrite(path: &TempPath, text: &str) {
    std::fs::write(path.as_str(), text).unwrap();
}

fn reload(proxy: &Ringside) -> (u16, String) {
    proxy.post("/reload")
}

fn refuses_connections(addr: SocketAddr) -> bool {
    TcpStream::connect(addr).is_err()
}

#[test]
fn a_reload_adds_and_removes_routes_and_a_removed_routes_connection_finishes() {
    let echo = Origin::echo();
    let (first, second) = (ReservedPort::new(), ReservedPort::new());
    let file = TempPath::holding(config(2, &[route(&first, &[echo.addr], "opaque")]));
    let proxy = start_on(&file);
    let (first_addr, second_addr) = (first.addr, second.addr);
    let open = TcpStream::connect(first_addr).unwrap();
    assert_eq!(echo_and_keep_open(&open, b"before"), b"before");

    let both = [
        route(&first, &[echo.addr], "opaque"),
        route(&second, &[echo.addr], "opaque"),
    ];
    rewrite(&file, &config(2, &both));
    let (status, body) = reload(&proxy);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("added [{second_addr}]")), "{body}");
    assert_eq!(echo_through(second_addr, b"added"), b"added");

    rewrite(&file, &config(2, &[route(&second, &[echo.addr], "opaque")]));
    let (status, body) = reload(&proxy);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("removed [{first_addr}]")), "{body}");
    eventually("the removed route's listener closed", || {
        refuses_connections(first_addr)
    });
    assert_eq!(echo_and_keep_open(&open, b"after"), b"after", "it finishes");
    drop(open);
    assert_eq!(echo_through(second_addr, b"kept"), b"kept");
    let metrics = proxy.wait_idle();
    assert_eq!(
        metrics.sum("ringside_config_reloads_total", &[("result", "ok")]),
        2.0
    );
    let second_label = second_addr.to_string();
    let endpoints = metrics.sum("ringside_route_endpoints", &[("route", &second_label)]);
    assert_eq!(endpoints, 1.0);
}

#[test]
fn an_invalid_file_and_a_new_shard_count_are_refused_naming_the_key() {
    let echo = Origin::echo();
    let port = ReservedPort::new();
    let file = TempPath::holding(config(1, &[route(&port, &[echo.addr], "opaque")]));
    let proxy = start_on(&file);
    let addr = proxy.route();

    rewrite(
        &file,
        &config(1, &[route(&port, &[echo.addr], "opaque")]).replace(&echo.addr.to_string(), "nope"),
    );
    let (status, body) = reload(&proxy);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("route[0].upstreams[0]: \"nope\""), "{body}");

    rewrite(&file, &config(2, &[route(&port, &[echo.addr], "opaque")]));
    let (status, body) = reload(&proxy);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("runtime.shards: cannot change without a restart"),
        "{body}"
    );

    assert_eq!(echo_through(addr, b"unchanged"), b"unchanged");
    let metrics = proxy.wait_idle();
    let refused = metrics.sum("ringside_config_reloads_total", &[("result", "refused")]);
    assert_eq!(refused, 2.0);
    assert_eq!(
        metrics.sum("ringside_config_reloads_total", &[("result", "ok")]),
        0.0
    );
    assert_eq!(proxy.post("/reload").0, 400, "still the new shard count");
    assert_eq!(proxy.get("/reload").0, 405, "a POST only");
}

#[test]
fn sighup_moves_a_keep_alive_connection_to_the_new_endpoints_without_failing_a_request() {
    let (a, b) = (
        HttpOrigin::start("a", Duration::ZERO),
        HttpOrigin::start("b", Duration::ZERO),
    );
    let port = ReservedPort::new();
    let file = TempPath::holding(config(1, &[route(&port, &[a.addr], "http1")]));
    let proxy = start_on(&file);
    let addr = proxy.route();
    // Other clients keep requests in flight while the set changes.
    let load = KeepAliveLoad::start(addr, 2);
    let mut client = HttpClient::connect(addr);
    assert_eq!(client.get("/").unwrap().header("x-origin"), Some("a"));

    rewrite(&file, &config(1, &[route(&port, &[b.addr], "http1")]));
    proxy.signal("HUP");
    eventually("the same keep-alive connection reaches b", || {
        let response = client.get("/").expect("the connection stays open");
        assert_eq!(response.status, 200);
        response.header("x-origin") == Some("b")
    });
    load.stop();
    drop(client);
    let metrics = proxy.wait_idle();
    assert_eq!(
        metrics.sum("ringside_config_reloads_total", &[("result", "ok")]),
        1.0
    );
    let failed = metrics.sum("response_total", &[("classification", "failure")]);
    assert_eq!(failed, 0.0, "no request failed");
}

/// An HTTP/2 client connection follows the route as an HTTP/1 one does:
/// its streams begun after the reload go to the new endpoints, on the
/// same connection.
#[test]
fn an_http2_connections_new_streams_go_to_the_new_endpoints() {
    let (a, b) = (H2Origin::start(), H2Origin::start());
    let port = ReservedPort::new();
    let file = TempPath::holding(config(1, &[route(&port, &[a.addr], "http2")]));
    let proxy = start_on(&file);
    let target = proxy.route();
    runtime().block_on(async {
        // One client connection for the whole test: `sender` is bound to it.
        let mut sender = connect(target).await;
        let ask = || Request::post("http://reload.local/").body(()).unwrap();
        let answer = call(&mut sender, ask(), b"h2".to_vec()).await;
        let answer = answer.expect("an answer from a");
        assert_eq!((answer.status, a.requests()), (200, 1));

        rewrite(&file, &config(1, &[route(&port, &[b.addr], "http2")]));
        assert_eq!(reload(&proxy).0, 200);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while b.requests() == 0 {
            assert!(std::time::Instant::now() < deadline, "no stream reached b");
            let answer = call(&mut sender, ask(), b"h2".to_vec()).await;
            let answer = answer.expect("an answer on the same connection");
            assert_eq!(answer.status, 200);
        }
    });
    let metrics = proxy.wait_idle();
    let failed = metrics.sum("response_total", &[("classification", "failure")]);
    assert_eq!(failed, 0.0, "no request failed");
}

/// The big one: 50 reloads, each changing a route's endpoints and adding
/// or removing another, under HTTP/1, HTTP/2 and opaque load, with every
/// response and every byte counted.
#[test]
fn fifty_reloads_under_http1_http2_and_opaque_load_lose_nothing() {
    let (a, b) = (
        HttpOrigin::start("a", Duration::ZERO),
        HttpOrigin::start("b", Duration::ZERO),
    );
    let h2_origin = H2Origin::start();
    let echo = Origin::echo();
    let (http1, http2, opaque, extra) = (
        ReservedPort::new(),
        ReservedPort::new(),
        ReservedPort::new(),
        ReservedPort::new(),
    );
    let routes = |round: usize| {
        let http1_set: &[SocketAddr] = if round.is_multiple_of(2) {
            &[a.addr]
        } else {
            &[a.addr, b.addr]
        };
        let mut routes = vec![
            route(&http1, http1_set, "http1"),
            route(&http2, &[h2_origin.addr], "http2"),
            route(&opaque, &[echo.addr], "opaque"),
        ];
        if round % 3 == 1 {
            routes.push(route(&extra, &[echo.addr], "opaque"));
        }
        config(2, &routes)
    };
    let file = TempPath::holding(routes(0));
    let proxy = start_on(&file);
    let stop = Arc::new(AtomicBool::new(false));
    let http1_answers = Arc::new(AtomicUsize::new(0));
    let opaque_bytes = Arc::new(AtomicUsize::new(0));
    let h2_answers = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..2 {
        let (stopped, answers, target) = (stop.clone(), http1_answers.clone(), http1.addr);
        load.push(thread::spawn(move || {
            // One keep-alive connection for the whole test: a reload that
            // closed it would fail the next request.
            let mut client = HttpClient::connect(target);
            while !stopped.load(Ordering::SeqCst) {
                let response = client
                    .get("/size/1000")
                    .expect("an answer on the same connection");
                assert_eq!((response.status, response.body.len()), (200, 1000));
                answers.fetch_add(1, Ordering::SeqCst);
            }
        }));
        let (stopped_too, bytes, target) = (stop.clone(), opaque_bytes.clone(), opaque.addr);
        load.push(thread::spawn(move || {
            let stream = TcpStream::connect(target).unwrap();
            let mut round = 0u64;
            while !stopped_too.load(Ordering::SeqCst) {
                let data = random_bytes(4096, round);
                assert_eq!(echo_and_keep_open(&stream, &data), data, "byte-exact");
                bytes.fetch_add(data.len(), Ordering::SeqCst);
                round += 1;
            }
        }));
    }
    {
        let (stop, answers, target) = (stop.clone(), h2_answers.clone(), http2.addr);
        load.push(thread::spawn(move || {
            runtime().block_on(async move {
                let mut sender = connect(target).await;
                while !stop.load(Ordering::SeqCst) {
                    let request = Request::post("http://reload.local/").body(()).unwrap();
                    let answer = call(&mut sender, request, b"h2".to_vec()).await.unwrap();
                    assert_eq!((answer.status, answer.body.as_slice()), (200, &b"h2"[..]));
                    answers.fetch_add(1, Ordering::SeqCst);
                }
            })
        }));
    }
    for round in 1..=50 {
        rewrite(&file, &routes(round));
        let (status, body) = reload(&proxy);
        assert_eq!(status, 200, "reload {round}: {body}");
        // New connections, each reload: the added route too when it is in.
        let data = random_bytes(1000, round as u64);
        assert_eq!(echo_through(opaque.addr, &data), data);
        let (status, _) = http_get(http1.addr, "/size/10");
        assert_eq!(status, 200, "reload {round}");
    }
    stop.store(true, Ordering::SeqCst);
    for thread in load {
        thread.join().expect("no load client failed");
    }
    let (h1, h2, bytes) = (
        http1_answers.load(Ordering::SeqCst),
        h2_answers.load(Ordering::SeqCst),
        opaque_bytes.load(Ordering::SeqCst),
    );
    eprintln!("50 reloads: {h1} HTTP/1 answers, {h2} HTTP/2 answers, {bytes} opaque bytes echoed");
    assert!(h1 > 0 && h2 > 0 && bytes > 0);
    assert!(b.requests() > 0, "the changed set was used");
    let metrics = proxy.wait_idle();
    assert_eq!(
        metrics.sum("ringside_config_reloads_total", &[("result", "ok")]),
        50.0
    );
    let failed = metrics.sum("response_total", &[("classification", "failure")]);
    assert_eq!(failed, 0.0, "no request failed");
}

#[test]
fn a_route_whose_names_have_not_resolved_answers_503_or_closes() {
    let (http_port, opaque_port) = (ReservedPort::new(), ReservedPort::new());
    // `.invalid` never resolves (RFC 6761): the name adds no endpoint.
    let table = |listen: &ReservedPort, protocol: &str| {
        let (listen, upstreams) = (listen.addr, "\"never-resolved.invalid:80\"");
        format!("[[route]]\nlisten = \"{listen}\"\nupstreams = [{upstreams}]\nprotocol = \"{protocol}\"\n")
    };
    let file = TempPath::holding(config(
        1,
        &[table(&http_port, "http1"), table(&opaque_port, "opaque")],
    ));
    let proxy = start_on(&file);
    let (http, opaque) = (proxy.routes[0], proxy.routes[1]);
    assert_eq!(http_get(http, "/").0, 503);
    let mut stream = TcpStream::connect(opaque).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    assert_eq!(
        stream
            .read_to_end(&mut rest)
            .map(|_| rest.len())
            .unwrap_or(0),
        0,
        "closed, nothing sent"
    );
    let metrics = proxy.wait_idle();
    let label = http.to_string();
    assert_eq!(
        metrics.sum("ringside_route_endpoints", &[("route", &label)]),
        0.0
    );
    assert!(metrics
        .0
        .contains(&format!("ringside_route_endpoints{{route=\"{label}\"}} 0")));
}

#[test]
fn a_reload_applies_the_opaque_ports_to_routes_that_name_no_protocol() {
    let origin = HttpOrigin::start("a", Duration::ZERO);
    let port = ReservedPort::new();
    let table = |opaque_ports: &str| {
        format!(
            "[runtime]\nshards = 1\n\n[detect]\nopaque_ports = [{opaque_ports}]\n\n[[route]]\nlisten = \"{}\"\nupstreams = [\"{}\"]\n",
            port.addr, origin.addr
        )
    };
    let file = TempPath::holding(table(""));
    let proxy = start_on(&file);
    let addr = proxy.route();
    assert_eq!(http_get(addr, "/").0, 200);
    let counted = |proxy: &Ringside| proxy.wait_idle().sum("request_total", &[]);
    assert_eq!(counted(&proxy), 1.0, "detected as HTTP");

    rewrite(&file, &table(&origin.addr.port().to_string()));
    let (status, body) = reload(&proxy);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("detect, mesh peers and inbound policy applied"),
        "{body}"
    );
    // Keep-alive: through opaque TCP the origin, not ringside, would end a
    // `Connection: close` exchange.
    let response = HttpClient::connect(addr).get("/").expect("an answer");
    assert_eq!(response.status, 200, "answered through opaque TCP");
    assert_eq!(counted(&proxy), 1.0, "not seen as a request any more");
}
