//! Calling required modules: the round-robin pool's `next()` alone and from
//! two threads at once, and the balanced HTTP client against plain awc to
//! one loopback host (`GET`, a 9-byte body, kept-alive connections).
//!
//! ```sh
//! cargo bench --bench lb
//! ```

use std::cell::Cell;
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use actix::System;
use actix_web::{web, App, HttpResponse, HttpServer};
use criterion::{criterion_group, criterion_main, Criterion};
use isp_cluster::lb::{BalancedClient, RoundRobin};

fn three_hosts() -> RoundRobin {
    let hosts: Vec<String> = ["10.0.0.1:9001", "10.0.0.2:9001", "[fd00::3]:9001"]
        .iter()
        .map(|h| (*h).to_owned())
        .collect();
    RoundRobin::with_hosts("auth", &hosts)
}

fn next(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_robin_next");
    let pool = three_hosts();
    group.bench_function("uncontended", |b| {
        b.iter(|| black_box(pool.next().unwrap()))
    });
    // Both threads call next() on one pool; the time is per call, as each
    // thread sees it (the slower thread's wall time over its calls).
    group.bench_function("2_threads", |b| {
        b.iter_custom(|iters| {
            let barrier = Barrier::new(2);
            std::thread::scope(|s| {
                let run = || {
                    barrier.wait();
                    let started = Instant::now();
                    for _ in 0..iters {
                        black_box(pool.next().unwrap());
                    }
                    started.elapsed()
                };
                let other = s.spawn(run);
                let mine = run();
                mine.max(other.join().unwrap_or_default())
            })
        })
    });
    group.finish();
}

async fn who() -> HttpResponse {
    HttpResponse::Ok().body("127.0.0.1")
}

fn http(c: &mut Criterion) {
    let system = System::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = system.block_on(async {
        let server = HttpServer::new(|| App::new().route("/who", web::get().to(who)))
            .workers(1)
            // Between benchmarks nothing drives the client's runtime, so it
            // would not see the server close an idle connection and would
            // reuse it: keep connections open for the whole run.
            .keep_alive(Duration::from_secs(3600))
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
        let handle = server.handle();
        actix::spawn(server);
        handle
    });
    let url = format!("http://{addr}/who");
    let (plain, balanced) = system.block_on(async {
        let plain = awc::Client::builder()
            .timeout(Duration::from_secs(5))
            .finish();
        let balanced = BalancedClient::new(RoundRobin::with_hosts("auth", [addr.as_str()]));
        (plain, balanced)
    });

    // The two clients take turns, request by request, in every sample of
    // both benchmarks, so that both see the same server, the same warm
    // connections and the same load from whatever else runs on the
    // machine. Each benchmark reports its own side; the sums over every
    // pair give the overhead, printed at the end, which a round trip's
    // jitter of microseconds would hide in the difference of two medians.
    let totals = Cell::new((Duration::ZERO, Duration::ZERO, 0u64));
    let pairs = |iters: u64| {
        system.block_on(async {
            let (mut plain_time, mut balanced_time) = (Duration::ZERO, Duration::ZERO);
            for i in 0..iters {
                for balanced_turn in [i % 2 == 0, i % 2 == 1] {
                    let started = Instant::now();
                    let mut response = if balanced_turn {
                        balanced.get("/who").send().await.unwrap()
                    } else {
                        plain.get(url.as_str()).send().await.unwrap()
                    };
                    black_box(response.body().await.unwrap());
                    match balanced_turn {
                        true => balanced_time += started.elapsed(),
                        false => plain_time += started.elapsed(),
                    }
                }
            }
            let (p, b, n) = totals.get();
            totals.set((p + plain_time, b + balanced_time, n + iters));
            (plain_time, balanced_time)
        })
    };
    let mut group = c.benchmark_group("http_one_host");
    group
        .sample_size(100)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("plain_awc", |b| b.iter_custom(|iters| pairs(iters).0));
    group.bench_function("balanced", |b| b.iter_custom(|iters| pairs(iters).1));
    group.finish();
    let (plain_time, balanced_time, n) = totals.get();
    let per_request = |total: Duration| total.as_nanos() as f64 / n.max(1) as f64 / 1000.0;
    println!(
        "http_one_host paired over {n} requests each: plain awc {:.2} µs, balanced {:.2} µs, \
         overhead {:.2} µs per request",
        per_request(plain_time),
        per_request(balanced_time),
        per_request(balanced_time) - per_request(plain_time),
    );
    system.block_on(server.stop(true));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(5));
    targets = next, http
}
criterion_main!(benches);
