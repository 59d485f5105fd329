//! The cost of `metrics_cloudwatch_embedded` for the metrics of one webhook request: `Requests`
//! by provider and outcome, `Events` by provider and event type (one to three types), and on
//! every fourth request `Suppressions` by provider and reason, flushed with the request id.
//!
//!     cargo run --release -- init          # the init call, once per process
//!     cargo run --release -- requests N    # mean time per request over N requests
//!     cargo run --release -- sample        # what one flush writes

use std::time::Instant;

use metrics::{counter, describe_counter, Unit};
use metrics_cloudwatch_embedded::{Builder, Collector};

const EVENT_TYPES: [&str; 3] = ["delivered", "opened", "clicked"];

fn request(collector: &Collector, n: u64, out: &mut Vec<u8>) {
    counter!("Requests", "Provider" => "engagelab", "Outcome" => "stored").increment(1);
    for event_type in &EVENT_TYPES[..(n % 3) as usize + 1] {
        counter!("Events", "Provider" => "engagelab", "EventType" => *event_type).increment(1);
    }
    if n % 4 == 0 {
        counter!("Suppressions", "Provider" => "engagelab", "Reason" => "hard_bounce").increment(1);
    }
    collector.set_property("RequestId", format!("c0ffee00-0000-4000-8000-{n:012}")).flush(&mut *out).expect("flush");
}

fn main() {
    let started = Instant::now();
    let collector = Builder::new().cloudwatch_namespace("Mailhooks").init().expect("init");
    let init = started.elapsed();
    describe_counter!("Requests", Unit::Count, "webhook requests");
    describe_counter!("Events", Unit::Count, "events newly stored");
    describe_counter!("Suppressions", Unit::Count, "recipients newly suppressed");

    let mut arguments = std::env::args().skip(1);
    match arguments.next().as_deref() {
        Some("init") => println!("init: {:.1} µs", init.as_secs_f64() * 1e6),
        Some("sample") => {
            let mut out = Vec::new();
            request(collector, 0, &mut out);
            print!("{}", String::from_utf8_lossy(&out));
        }
        Some("requests") => {
            let count: u64 = arguments.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
            let mut out = Vec::with_capacity(4096);
            let started = Instant::now();
            for n in 0..count {
                out.clear();
                request(collector, n, &mut out);
            }
            println!("per request: {:.2} µs over {count}", started.elapsed().as_secs_f64() * 1e6 / count as f64);
        }
        _ => eprintln!("usage: emf-crate init | requests N | sample"),
    }
}
