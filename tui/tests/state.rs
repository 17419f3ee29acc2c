//! The state machine without a terminal: keys and runtime messages in, effects
//! and state out.

mod common;

use common::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tandem_protocol::TurnStatus;
use tandem_tui::app::{Armed, Conn, Effect, Mode, Msg, Popup, SubmitError, TurnState, WebLink};

#[test]
fn enter_sends_and_alt_enter_adds_a_line() {
    let mut app = local_app();
    type_text(&mut app, "first line");
    app.update(Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT)));
    type_text(&mut app, "second");
    app.update(Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::SHIFT)));
    type_text(&mut app, "third");
    assert_eq!(app.composer.text(), "first line\nsecond\nthird");
    assert_eq!(key(&mut app, KeyCode::Enter), vec![Effect::Submit("first line\nsecond\nthird".into())]);
    assert!(app.composer.is_empty());
    // Empty input sends nothing.
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    // Up recalls the prompt.
    key(&mut app, KeyCode::Up);
    assert_eq!(app.composer.text(), "first line\nsecond\nthird");
}

#[test]
fn slash_popup_enter_runs_the_highlighted_command_and_tab_completes() {
    let mut app = local_app();
    type_text(&mut app, "/s");
    assert_eq!(app.slash_matches().len(), 2);
    key(&mut app, KeyCode::Down);
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    assert_eq!(app.popup, Some(Popup::Status), "Down then Enter runs /status");
    assert!(app.composer.is_empty());
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.popup, None);

    type_text(&mut app, "/he");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.composer.text(), "/help");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.popup, Some(Popup::Help));
    key(&mut app, KeyCode::Esc);

    type_text(&mut app, "/nope");
    assert!(app.slash_matches().is_empty());
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    assert!(app.notice.as_ref().unwrap().text.contains("unknown command /nope"));
    assert_eq!(app.composer.text(), "/nope", "a mistyped command is not lost");
}

#[test]
fn share_menu_digits_act_at_once_and_esc_closes() {
    let mut app = local_app();
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.popup, Some(Popup::ShareMenu { selected: 0 }));
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.popup, None);

    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    assert_eq!(key(&mut app, KeyCode::Char('1')), vec![Effect::StartSharing]);
    assert_eq!(app.popup, None);
    // A second start while the first is under way does nothing.
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    assert!(key(&mut app, KeyCode::Char('1')).is_empty());

    // Arrows + Enter reach the same actions.
    let mut app = local_app();
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Down);
    assert_eq!(key(&mut app, KeyCode::Enter), vec![Effect::LoadThreads]);
    assert!(matches!(app.popup, Some(Popup::Join(_))));

    // 3 in LOCAL: nothing to stop; 4: help.
    let mut app = local_app();
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    assert!(key(&mut app, KeyCode::Char('3')).is_empty());
    assert!(app.notice.as_ref().unwrap().text.contains("not sharing"));
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('4'));
    assert_eq!(app.popup, Some(Popup::Help));
}

#[test]
fn sharing_switches_mode_and_stop_returns_to_local() {
    let mut app = local_app();
    Feed { app: &mut app }.turn("u1", "hi", me(), "hi");
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('1'));
    app.update(Msg::Attached {
        mode: Mode::Shared,
        thread_id: THREAD.into(),
        server: "unix:/s".into(),
        agent: "echo".into(),
    });
    app.update(Msg::SharingStarted { thread_id: THREAD.into(), http: false });
    assert_eq!(app.mode, Mode::Shared);
    assert!(!app.pending_action);
    assert_eq!(app.popup, Some(Popup::Shared { thread_id: THREAD.into() }));
    key(&mut app, KeyCode::Esc);
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    assert!(key(&mut app, KeyCode::Char('1')).is_empty(), "already shared");
    assert!(app.notice.as_ref().unwrap().text.contains("already sharing"));
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    assert_eq!(key(&mut app, KeyCode::Char('3')), vec![Effect::StopSharing]);
    app.update(Msg::Attached {
        mode: Mode::Local,
        thread_id: THREAD.into(),
        server: "in-process".into(),
        agent: "echo".into(),
    });
    assert_eq!(app.mode, Mode::Local);
}

#[test]
fn join_picker_picks_or_takes_a_typed_id_and_a_failure_changes_nothing() {
    let mut app = local_app();
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('2'));
    app.update(Msg::Threads(Ok(vec![
        thread("0192f0c2-0000-7000-8000-000000000001", "a", 3, false),
        thread("0192f0c2-0000-7000-8000-000000000002", "b", 3, false),
    ])));
    key(&mut app, KeyCode::Down);
    assert_eq!(key(&mut app, KeyCode::Enter), vec![Effect::Join("0192f0c2-0000-7000-8000-000000000002".into())]);
    app.update(Msg::ActionFailed("thread not found: x — nothing changed".into()));
    assert_eq!(app.mode, Mode::Local);
    let Some(Popup::Join(p)) = &app.popup else { panic!("picker closed") };
    assert!(p.error.as_ref().unwrap().contains("not found"));

    for c in "0192f0c2-0000-7000-8000-00000000000f".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    assert_eq!(key(&mut app, KeyCode::Enter), vec![Effect::Join("0192f0c2-0000-7000-8000-00000000000f".into())]);
    app.update(Msg::Attached {
        mode: Mode::Shared,
        thread_id: "0192f0c2-0000-7000-8000-00000000000f".into(),
        server: "unix:/s".into(),
        agent: "echo".into(),
    });
    assert_eq!(app.popup, None, "joining closes the picker");
    assert_eq!(app.mode, Mode::Shared);
}

#[test]
fn busy_keeps_the_text_whether_known_here_or_told_by_the_server() {
    let mut app = shared_app();
    Feed { app: &mut app }.started("t1", "long", peer());
    type_text(&mut app, "mine");
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    assert_eq!(app.composer.text(), "mine");
    assert!(
        app.notice.as_ref().unwrap().text.starts_with("busy — turn t1 running (started by tandem-tui (bob, 77c1))")
    );

    let mut app = shared_app();
    type_text(&mut app, "race");
    assert_eq!(key(&mut app, KeyCode::Enter), vec![Effect::Submit("race".into())]);
    type_text(&mut app, "next draft");
    app.update(Msg::SubmitFailed {
        text: "race".into(),
        error: SubmitError::Busy { turn_id: "t9".into(), started_by: Some(script()) },
    });
    assert_eq!(app.composer.text(), "race\nnext draft", "nothing typed is lost");
}

#[test]
fn ctrl_c_interrupts_own_turns_at_once_others_after_confirming_and_quits_twice_when_idle() {
    let mut app = shared_app();
    Feed { app: &mut app }.started("t1", "mine", me());
    assert_eq!(ctrl(&mut app, 'c'), vec![Effect::Interrupt("t1".into())]);
    Feed { app: &mut app }.completed("t1", TurnStatus::Interrupted, None);
    assert_eq!(app.turn, TurnState::Idle);

    Feed { app: &mut app }.started("t2", "theirs", peer());
    assert!(ctrl(&mut app, 'c').is_empty());
    assert_eq!(app.armed, Some(Armed::Interrupt));
    assert!(app.notice.as_ref().unwrap().text.contains("press Ctrl-C again"));
    assert_eq!(ctrl(&mut app, 'c'), vec![Effect::Interrupt("t2".into())]);

    // Another key disarms.
    Feed { app: &mut app }.completed("t2", TurnStatus::Interrupted, None);
    assert!(ctrl(&mut app, 'c').is_empty());
    assert_eq!(app.armed, Some(Armed::Quit));
    key(&mut app, KeyCode::Char('x'));
    assert_eq!(app.armed, None);
    assert!(ctrl(&mut app, 'c').is_empty());
    assert_eq!(ctrl(&mut app, 'c'), vec![Effect::Quit]);
    assert!(app.quit);
}

#[test]
fn a_lost_connection_blocks_sending_keeps_text_and_recovers() {
    let mut app = shared_app();
    app.update(Msg::ConnLost { reason: "refused".into() });
    type_text(&mut app, "while offline");
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    assert_eq!(app.composer.text(), "while offline");
    assert!(app.notice.as_ref().unwrap().text.contains("not connected"));
    app.update(Msg::ConnRestored { agent: "openai (m)".into() });
    assert_eq!(app.agent, "openai (m)");
    assert_eq!(app.conn, Conn::Up);
    assert_eq!(key(&mut app, KeyCode::Enter), vec![Effect::Submit("while offline".into())]);
}

#[test]
fn replayed_events_after_a_reconnect_are_not_duplicated() {
    let mut app = shared_app();
    Feed { app: &mut app }.turn("t1", "once", peer(), "only once");
    let before = app.transcript.entries().to_vec();
    // The same events again (a resubscription overlapping what was seen).
    let seq = app.transcript.last_seq;
    let dup = tandem_protocol::Event {
        seq: seq - 1,
        ts: "2026-11-22T11:03:00.000Z".into(),
        thread_id: THREAD.into(),
        body: tandem_protocol::EventBody::AgentMessageDelta {
            turn_id: "t1".into(),
            item_id: "i".into(),
            delta: " again".into(),
        },
        imported: false,
        original_ts: None,
    };
    app.update(Msg::Event(dup));
    assert_eq!(app.transcript.entries(), &before[..]);
}

#[test]
fn scrolling_moves_the_view_and_sending_returns_to_the_end() {
    let mut app = local_app();
    for i in 0..30 {
        Feed { app: &mut app }.turn(&format!("t{i}"), &format!("prompt {i}"), me(), "answer");
    }
    key(&mut app, KeyCode::PageUp);
    assert_eq!(app.scroll, 10);
    app.update(Msg::ScrollDown(3));
    assert_eq!(app.scroll, 7);
    let lines = tandem_tui::ui::visible_lines(&app, 80, 10);
    assert_eq!(lines.len(), 10);
    type_text(&mut app, "x");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.scroll, 0);
}

#[test]
fn the_shared_box_does_not_eat_typing() {
    let mut app = shared_app();
    type_text(&mut app, "hal");
    app.update(Msg::SharingStarted { thread_id: THREAD.into(), http: false });
    assert!(matches!(app.popup, Some(Popup::Shared { .. })));
    type_text(&mut app, "f done");
    assert_eq!(app.popup, None);
    assert_eq!(app.composer.text(), "half done");
    app.update(Msg::SharingStarted { thread_id: THREAD.into(), http: false });
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.popup, None);
    assert_eq!(app.composer.text(), "half done");
}

#[test]
fn sharing_while_a_local_turn_runs_waits_for_it_and_carries_it_whole() {
    let mut app = local_app();
    let mut feed = Feed { app: &mut app };
    feed.started("t1", "long local job", me());
    feed.delta("t1", "half");
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    assert!(key(&mut app, KeyCode::Char('1')).is_empty(), "not while the turn runs");
    assert!(app.notice.as_ref().unwrap().text.contains("sharing starts when turn t1 finishes"), "{:?}", app.notice);
    assert_eq!(app.share_after.as_deref(), Some("t1"));
    // Nothing else is sent meanwhile; the text stays.
    type_text(&mut app, "next");
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    assert_eq!(app.composer.text(), "next");

    let mut feed = Feed { app: &mut app };
    feed.delta("t1", " and the rest");
    feed.push(tandem_protocol::EventBody::ItemCompleted {
        turn_id: "t1".into(),
        item: tandem_protocol::Item::agent_message("t1-i", "half and the rest"),
    });
    let effects = feed.push(tandem_protocol::EventBody::TurnCompleted {
        turn_id: "t1".into(),
        status: TurnStatus::Completed,
        error: None,
    });
    assert_eq!(effects, vec![Effect::StartSharing], "the turn's end starts the share");
    assert!(app.notice.as_ref().unwrap().text.contains("starting to share"));
    let imports = app.transcript.imports(tandem_tui::transcript::CUT_SHORT_BY_SHARE);
    assert_eq!(imports.len(), 1);
    assert_eq!(imports[0].response, "half and the rest");
    assert_eq!(imports[0].status, Some(TurnStatus::Completed));
    assert_eq!(imports[0].agent.as_ref().unwrap().kind, "echo");
}

#[test]
fn a_share_waiting_for_a_turn_can_be_cancelled() {
    let mut app = local_app();
    Feed { app: &mut app }.started("t1", "long local job", me());
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('1'));
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    assert!(key(&mut app, KeyCode::Char('3')).is_empty());
    assert!(app.notice.as_ref().unwrap().text.contains("sharing cancelled"));
    assert!(!app.pending_action);
    assert!(Feed { app: &mut app }.completed_effects("t1").is_empty(), "no share once cancelled");
}

#[test]
fn stopping_while_a_peer_turn_runs_keeps_it_in_the_local_copy() {
    let mut app = shared_app();
    let mut feed = Feed { app: &mut app };
    feed.turn("t1", "done before", peer(), "all of it");
    feed.started("t2", "still going", peer());
    feed.delta("t2", "so far");
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    assert_eq!(key(&mut app, KeyCode::Char('3')), vec![Effect::StopSharing]);
    let imports = app.transcript.imports(tandem_tui::transcript::CUT_SHORT_BY_STOP);
    let got: Vec<_> = imports.iter().map(|t| (t.input.as_str(), t.response.as_str(), t.status.unwrap())).collect();
    assert_eq!(
        got,
        [("done before", "all of it", TurnStatus::Completed), ("still going", "so far", TurnStatus::Interrupted)]
    );
    assert!(imports[1].error.as_deref().unwrap().contains("still running on the shared thread"));
    assert_eq!(imports[1].client.as_ref(), Some(&peer()));
}

#[test]
fn imports_keep_each_turns_status_error_and_agent() {
    let mut app = shared_app();
    let mut feed = Feed { app: &mut app };
    feed.started("t1", "stopped", me());
    feed.completed("t1", TurnStatus::Interrupted, Some("interrupted by you"));
    feed.started("t2", "broken", peer());
    feed.completed("t2", TurnStatus::Failed, Some("no API key"));
    let imports = app.transcript.imports("unused");
    let got: Vec<_> = imports.iter().map(|t| (t.status.unwrap(), t.error.as_deref())).collect();
    assert_eq!(got, [(TurnStatus::Interrupted, Some("interrupted by you")), (TurnStatus::Failed, Some("no API key"))]);
    assert!(imports.iter().all(|t| t.agent.as_ref().unwrap().kind == "echo"));
}

#[test]
fn each_notice_goes_when_the_change_it_describes_happens() {
    // "interrupting…" goes when the turn ends.
    let mut app = shared_app();
    Feed { app: &mut app }.started("t1", "mine", me());
    ctrl(&mut app, 'c');
    assert!(app.notice.as_ref().unwrap().text.starts_with("interrupting turn t1"));
    Feed { app: &mut app }.delta("t1", "still streaming");
    assert!(app.notice.is_some(), "not before the turn ends");
    Feed { app: &mut app }.completed("t1", TurnStatus::Interrupted, Some("interrupted by you"));
    assert_eq!(app.notice, None);

    // A busy refusal goes when the turn it names ends.
    Feed { app: &mut app }.started("t2", "theirs", peer());
    type_text(&mut app, "mine");
    key(&mut app, KeyCode::Enter);
    assert!(app.notice.as_ref().unwrap().text.starts_with("busy"));
    Feed { app: &mut app }.completed("t2", TurnStatus::Completed, None);
    assert_eq!(app.notice, None);
    assert_eq!(app.composer.text(), "mine");

    // A failed join's error goes once a thread is attached.
    app.update(Msg::ActionFailed("thread not found: x — nothing changed".into()));
    assert!(app.notice.is_some());
    app.update(Msg::Attached {
        mode: Mode::Shared,
        thread_id: THREAD.into(),
        server: "unix:/s".into(),
        agent: "echo".into(),
    });
    assert_eq!(app.notice, None);

    // "reconnected" goes when the connection is lost again, and "not
    // connected" when it comes back (replaced by "reconnected").
    app.update(Msg::ConnRestored { agent: "echo".into() });
    assert!(app.notice.as_ref().unwrap().text.starts_with("reconnected"));
    app.update(Msg::ConnLost { reason: "refused".into() });
    assert_eq!(app.notice, None);
    key(&mut app, KeyCode::Enter);
    assert!(app.notice.as_ref().unwrap().text.starts_with("not connected"));
    app.update(Msg::ConnRestored { agent: "echo".into() });
    assert!(app.notice.as_ref().unwrap().text.starts_with("reconnected"));

    // "press Ctrl-C again" goes when another key disarms it.
    let mut app = local_app();
    ctrl(&mut app, 'c');
    assert!(app.notice.as_ref().unwrap().text.contains("press Ctrl-C again to quit"));
    key(&mut app, KeyCode::Char('x'));
    assert_eq!(app.notice, None);
    // And a peer's turn's "press again to interrupt" goes when that turn ends.
    let mut app = shared_app();
    Feed { app: &mut app }.started("t3", "theirs", peer());
    ctrl(&mut app, 'c');
    assert!(app.notice.as_ref().unwrap().text.contains("press Ctrl-C again to interrupt"));
    Feed { app: &mut app }.completed("t3", TurnStatus::Completed, None);
    assert_eq!(app.notice, None);
    assert_eq!(app.armed, None);

    // Notices about nothing in particular stay until replaced.
    app.update(Msg::Note("stopped sharing".into(), tandem_tui::transcript::NoteKind::Info));
    app.update(Msg::Attached {
        mode: Mode::Local,
        thread_id: THREAD.into(),
        server: "in-process".into(),
        agent: "echo".into(),
    });
    assert!(app.notice.is_some(), "a stop's note outlives the attach it comes with");
}

#[test]
fn ids_in_notices_are_as_long_as_they_need_to_be() {
    let mut app = shared_app();
    let mut feed = Feed { app: &mut app };
    feed.turn("01a20850-1111-7000-8000-000000000001", "one", peer(), "a");
    feed.started("01a20850-2222-7000-8000-000000000002", "two", peer());
    type_text(&mut app, "mine");
    key(&mut app, KeyCode::Enter);
    assert!(app.notice.as_ref().unwrap().text.starts_with("busy — turn 01a20850-2 running"), "{:?}", app.notice);

    // Joining the thread already shown, by a start of its id, changes nothing.
    app.composer.clear();
    app.update(Msg::KnownThreads(vec![THREAD.into(), "0192f0c2-7b4e-7fff-8000-000000000000".into()]));
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('2'));
    type_text(&mut app, "0192f0c2-7b4e-7c");
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    assert!(app.notice.as_ref().unwrap().text.starts_with("already on thread 0192f0c2-7b4e-7c"));
    // An ambiguous start is for the server to list: it goes out as typed.
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('2'));
    type_text(&mut app, "0192f0c2");
    assert_eq!(key(&mut app, KeyCode::Enter), vec![Effect::Join("0192f0c2".into())]);
}

#[test]
fn the_share_menu_refreshes_the_known_ids_only_when_shared() {
    let mut app = local_app();
    type_text(&mut app, "/share");
    assert!(key(&mut app, KeyCode::Enter).is_empty(), "LOCAL must not reach for a server");
    let mut app = shared_app();
    type_text(&mut app, "/share");
    assert_eq!(key(&mut app, KeyCode::Enter), vec![Effect::LoadThreads]);
    app.update(Msg::Threads(Ok(vec![
        thread(THREAD, "this one", 3, false),
        thread("0192f0c2-7b4e-7fff-8000-000000000000", "a new neighbour", 1, false),
    ])));
    assert_eq!(app.short_thread(), "0192f0c2-7b4e-7c");
    assert_eq!(app.popup, Some(Popup::ShareMenu { selected: 2 }), "the menu stays; Stop sharing is highlighted");
}

#[test]
fn sharing_on_a_server_with_an_http_listener_makes_a_read_link() {
    let mut app = shared_app();
    let effects = app.update(Msg::SharingStarted { thread_id: THREAD.into(), http: true });
    assert_eq!(effects, vec![Effect::CreateLink(THREAD.into())]);
    assert_eq!(app.web_link, Some(WebLink::Creating));
    let url = format!("http://127.0.0.1:7878/t/{THREAD}#k=abc.def");
    assert!(app.update(Msg::LinkCreated(Ok(url.clone()))).is_empty());
    assert_eq!(app.web_link, Some(WebLink::Ready(url.clone())));
    assert_eq!(app.popup, Some(Popup::Shared { thread_id: THREAD.into() }), "the box stays open");
    // Leaving the thread forgets the link; a late answer is not shown.
    app.update(Msg::Attached {
        mode: Mode::Local,
        thread_id: THREAD.into(),
        server: "in-process".into(),
        agent: "echo".into(),
    });
    assert_eq!(app.web_link, None);
    app.update(Msg::LinkCreated(Ok(url)));
    assert_eq!(app.web_link, None);

    // No http listener: no link asked for; a failed one is said.
    let mut app = shared_app();
    assert!(app.update(Msg::SharingStarted { thread_id: THREAD.into(), http: false }).is_empty());
    assert_eq!(app.web_link, Some(WebLink::NoListener));
    let mut app = shared_app();
    app.update(Msg::SharingStarted { thread_id: THREAD.into(), http: true });
    app.update(Msg::LinkCreated(Err("too many links".into())));
    assert_eq!(app.web_link, Some(WebLink::Failed("too many links".into())));
}

#[test]
fn stop_sharing_says_link_viewers_lose_access_or_that_they_keep_it() {
    let mut app = shared_app();
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    assert_eq!(key(&mut app, KeyCode::Char('3')), vec![Effect::StopSharing]);
    let local = Msg::Attached {
        mode: Mode::Local,
        thread_id: THREAD.into(),
        server: "in-process".into(),
        agent: "echo".into(),
    };
    app.update(local.clone());
    app.update(Msg::SharingStopped { unshare_error: None });
    let notice = app.notice.clone().unwrap();
    assert!(notice.text.contains("stopped sharing — link viewers lost access"), "{notice:?}");
    assert_eq!(notice.kind, tandem_tui::transcript::NoteKind::Info);

    // The flag could not be turned off: detached all the same, and said so.
    let mut app = shared_app();
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('3'));
    app.update(local);
    app.update(Msg::SharingStopped { unshare_error: Some("not connected".into()) });
    assert_eq!(app.mode, Mode::Local);
    assert!(!app.pending_action);
    let notice = app.notice.clone().unwrap();
    assert_eq!(notice.kind, tandem_tui::transcript::NoteKind::Error);
    assert!(notice.text.contains("still shared (not connected)"), "{notice:?}");
    assert!(notice.text.contains(&format!("tandem share revoke --thread {THREAD}")), "{notice:?}");
}
