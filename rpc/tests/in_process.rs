//! The engine with its in-memory log, reached through the in-process client:
//! what a LOCAL session runs on. Same protocol, same invariants, no files.

use std::sync::Arc;

use tandem_client::{Client, ClientError};
use tandem_engine::Engine;
use tandem_engine::agent::EchoAgent;
use tandem_protocol::methods::*;
use tandem_protocol::{ClientInfo, ErrorCode, Event, EventBody, ImportedTurn, Position};

async fn engine(delay_ms: u64) -> Engine {
    let agent = EchoAgent { delay: std::time::Duration::from_millis(delay_ms) };
    Engine::in_memory(Arc::new(agent)).await.unwrap()
}

async fn client(engine: &Engine, name: &str) -> Client {
    let (r, w) = tokio::io::split(tandem_rpc::in_process(engine.clone()));
    Client::connect_stream("in-process", r, w, ClientInfo::new(name, "1")).await.unwrap()
}

fn parse(raw: &tandem_protocol::RawEvent) -> Event {
    serde_json::from_str(raw.get()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_session_imports_runs_and_replays() {
    let engine = engine(0).await;
    let c = client(&engine, "tui").await;
    assert_eq!(c.server().unwrap().server_info.agent.as_ref().unwrap().kind, "echo");
    let turns = vec![ImportedTurn::new("q", "a")];
    let thread = c
        .call::<ThreadStart>(&ThreadStartParams { title: Some("local".into()), turns, ..Default::default() })
        .await
        .unwrap()
        .thread;
    assert_eq!(thread.last_seq, 4);
    let mut sub = c
        .subscribe(&ThreadSubscribeParams { thread_id: thread.id.clone(), from: Some(Position::Seq(1)) })
        .await
        .unwrap();
    let turn = c
        .call::<TurnStart>(&TurnStartParams { thread_id: thread.id.clone(), input: "one two".into(), client: None })
        .await
        .unwrap()
        .turn;
    let mut seen = Vec::new();
    loop {
        let ev = parse(&sub.next().await.unwrap());
        let done = matches!(&ev.body, EventBody::TurnCompleted { turn_id, .. } if *turn_id == turn.id);
        seen.push(ev);
        if done {
            break;
        }
    }
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    assert!(seen[1].imported && !seen[5].imported);
    if let EventBody::TurnStarted { client, .. } = &seen[4].body {
        assert_eq!(client.name, "tui");
    } else {
        panic!("{:?}", seen[4]);
    }

    // Pages and timestamps work on the memory log too.
    let page = c
        .call::<ThreadEvents>(&ThreadEventsParams {
            thread_id: thread.id.clone(),
            from: Some(Position::Seq(3)),
            limit: Some(4),
        })
        .await
        .unwrap();
    assert_eq!(page.events.iter().map(|e| parse(e).seq).collect::<Vec<_>>(), [3, 4, 5, 6]);
    assert_eq!(page.next, Some(7));
    let ts = seen[6].ts.clone();
    let page = c
        .call::<ThreadEvents>(&ThreadEventsParams {
            thread_id: thread.id.clone(),
            from: Some(Position::parse(&ts).unwrap()),
            limit: Some(1),
        })
        .await
        .unwrap();
    assert!(parse(&page.events[0]).ts >= ts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_in_process_submits_start_one_turn() {
    let engine = engine(20).await;
    let c = client(&engine, "a").await;
    let thread = c.call::<ThreadStart>(&ThreadStartParams::default()).await.unwrap().thread;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let c = client(&engine, &format!("c{i}")).await;
        let id = thread.id.clone();
        tasks.push(tokio::spawn(async move {
            c.call::<TurnStart>(&TurnStartParams { thread_id: id, input: "a b c d e".into(), client: None }).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(ClientError::Rpc(e)) => assert!(e.is(ErrorCode::Busy), "{e:?}"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 1);
}
