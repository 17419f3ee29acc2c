//! TUI speed, measured (not asserted): `cargo bench -p tandem-tui --bench render`.
//!
//! 1. Frame render time with a 10,000-turn transcript (target ≤ 16 ms a frame),
//!    at the end of the conversation and scrolled far back.
//! 2. Keeping up with an agent streaming 2,000 deltas a second: a producer sends
//!    timestamped deltas; the consumer does what the runtime does (apply every
//!    waiting message, then draw one frame) and we report how far behind the
//!    screen is, early and late in the run — growing lag means it cannot keep up.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tandem_protocol::{AgentInfo, ClientInfo, Event, EventBody, TurnStatus};
use tandem_tui::app::{App, Mode, Msg};

const THREAD: &str = "0192f0c2-7b4e-7c1a-9f2d-1a2b3c4d5e6f";

fn event(seq: u64, body: EventBody) -> Event {
    Event {
        seq,
        ts: "2026-11-22T11:03:04.123Z".into(),
        thread_id: THREAD.into(),
        body,
        imported: false,
        original_ts: None,
    }
}

fn app_with_turns(n: usize) -> App {
    let me = ClientInfo::new("tandem-tui (bench, 0000)", "0.1.0");
    let mut app = App::new(Mode::Shared, THREAD.into(), "unix:/tmp/bench.sock".into(), me.clone());
    let answer = "the quick brown fox jumps over the lazy dog ".repeat(6);
    let mut seq = 0;
    let mut push = |app: &mut App, body| {
        seq += 1;
        app.update(Msg::Event(event(seq, body)));
    };
    for i in 0..n {
        let turn = format!("turn-{i}");
        let client = if i % 3 == 0 { me.clone() } else { ClientInfo::new("tandem-share", "0.1.0") };
        push(
            &mut app,
            EventBody::TurnStarted {
                turn_id: turn.clone(),
                input: format!("question number {i}: what about the thing we discussed?"),
                client,
                agent: AgentInfo { kind: "echo".into(), model: None },
            },
        );
        push(
            &mut app,
            EventBody::AgentMessageDelta { turn_id: turn.clone(), item_id: "i".into(), delta: answer.clone() },
        );
        push(&mut app, EventBody::TurnCompleted { turn_id: turn, status: TurnStatus::Completed, error: None });
    }
    app
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn frame_times(app: &App, frames: usize) -> (Duration, Duration) {
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let mut times = Vec::with_capacity(frames);
    for _ in 0..frames {
        let t = Instant::now();
        terminal.draw(|f| tandem_tui::ui::draw(f, app)).unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let mut app = app_with_turns(10_000);
    let (p50, p99) = frame_times(&app, 300);
    println!(
        "render, 10,000 turns, 120x40, at the end:      p50 {:.3} ms  p99 {:.3} ms  (target <= 16 ms)",
        ms(p50),
        ms(p99)
    );
    app.scroll = 20_000;
    let (p50, p99) = frame_times(&app, 100);
    println!("render, 10,000 turns, scrolled 20,000 lines up: p50 {:.3} ms  p99 {:.3} ms", ms(p50), ms(p99));
    app.scroll = 0;

    // Streaming at 2,000 deltas/s for 5 s into a long transcript.
    let (tx, rx) = mpsc::channel::<(Instant, Event)>();
    let rate = 2000u64;
    let total = rate * 5;
    let base_seq = app.transcript.last_seq;
    let producer = std::thread::spawn(move || {
        let start = Instant::now();
        tx.send((
            Instant::now(),
            event(
                base_seq + 1,
                EventBody::TurnStarted {
                    turn_id: "live".into(),
                    input: "stream please".into(),
                    client: ClientInfo::new("tandem-share", "0.1.0"),
                    agent: AgentInfo { kind: "echo".into(), model: None },
                },
            ),
        ))
        .unwrap();
        for i in 0..total {
            let due = start + Duration::from_micros(i * 1_000_000 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let ev = event(
                base_seq + 2 + i,
                EventBody::AgentMessageDelta { turn_id: "live".into(), item_id: "i".into(), delta: format!("w{i} ") },
            );
            if tx.send((Instant::now(), ev)).is_err() {
                return;
            }
        }
    });
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let mut lags: Vec<(Instant, Duration)> = Vec::new();
    let mut frames = 0u64;
    let mut received = 0u64;
    let started = Instant::now();
    while received < total + 1 {
        let Ok((sent, ev)) = rx.recv() else { break };
        app.update(Msg::Event(ev));
        received += 1;
        let mut oldest = sent;
        for (s, ev) in rx.try_iter().take(4096) {
            app.update(Msg::Event(ev));
            received += 1;
            oldest = oldest.min(s);
        }
        terminal.draw(|f| tandem_tui::ui::draw(f, &app)).unwrap();
        frames += 1;
        lags.push((Instant::now(), oldest.elapsed()));
    }
    producer.join().unwrap();
    let elapsed = started.elapsed();
    let window = |from: f64, to: f64| {
        let mut v: Vec<Duration> = lags
            .iter()
            .filter(|(t, _)| {
                let s = t.duration_since(started).as_secs_f64();
                s >= from && s < to
            })
            .map(|(_, l)| *l)
            .collect();
        v.sort();
        if v.is_empty() { (Duration::ZERO, Duration::ZERO) } else { (percentile(&v, 0.5), *v.last().unwrap()) }
    };
    let (early50, early_max) = window(0.0, 1.0);
    let (late50, late_max) = window(4.0, 5.5);
    println!(
        "streaming 2,000 deltas/s for {:.1} s onto 10,000 turns: {} frames ({:.0}/s); lag p50/max first second {:.2}/{:.2} ms, last second {:.2}/{:.2} ms ({})",
        elapsed.as_secs_f64(),
        frames,
        frames as f64 / elapsed.as_secs_f64(),
        ms(early50),
        ms(early_max),
        ms(late50),
        ms(late_max),
        if late50 <= early50 * 2 + Duration::from_millis(5) {
            "keeps up: no growing lag"
        } else {
            "FALLS BEHIND: lag grows"
        }
    );
}
