//! Snapshots of the rendered screen (ratatui `TestBackend`): every view a user
//! meets. Review changes with `cargo insta review`.

mod common;

use common::*;
use crossterm::event::KeyCode;
use tandem_protocol::TurnStatus;
use tandem_tui::app::{Msg, SubmitError};

#[test]
fn local_screen() {
    let mut app = local_app();
    Feed { app: &mut app }.turn("u1", "what is tandem?", me(), "a way to share one agent conversation");
    type_text(&mut app, "and how do I share it?");
    insta::assert_snapshot!(render(&app, 80, 24).backend());
}

#[test]
fn empty_local_screen() {
    let app = local_app();
    insta::assert_snapshot!(render(&app, 80, 24).backend());
}

#[test]
fn shared_screen_with_peers() {
    let mut app = shared_app();
    let mut feed = Feed { app: &mut app };
    feed.turn("u1", "hello from ada", me(), "hello from ada");
    feed.turn("u2", "hello from bob", peer(), "hello from bob");
    feed.turn("u3", "ping from a script", script(), "ping from a script");
    feed.started("u4", "this one failed", script());
    feed.completed("u4", TurnStatus::Failed, Some("`my-agent` exited with status 2: no API key"));
    insta::assert_snapshot!(render(&app, 80, 24).backend());
}

#[test]
fn a_turn_streaming() {
    let mut app = shared_app();
    let mut feed = Feed { app: &mut app };
    feed.started("u1", "count to five", peer());
    for w in ["one", " two", " three"] {
        feed.delta("u1", w);
    }
    insta::assert_snapshot!(render(&app, 80, 24).backend());
}

#[test]
fn share_menu() {
    let mut app = local_app();
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Down);
    insta::assert_snapshot!(render(&app, 80, 24).backend());
}

#[test]
fn status_block() {
    let mut app = shared_app();
    Feed { app: &mut app }.started("u1", "long job", peer());
    type_text(&mut app, "/status");
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!(render(&app, 80, 24).backend());
}

#[test]
fn help_view() {
    let mut app = local_app();
    type_text(&mut app, "/help");
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!(render(&app, 80, 30).backend());
}

#[test]
fn join_picker() {
    let mut app = local_app();
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('2'));
    // Made within the same minute: the first 8 characters are alike, so each
    // shows as far as it is unique. The newest activity comes first.
    let mut busy = thread("0192f0c2-9a10-7000-8000-000000000002", "flaky test hunt", 48, true);
    busy.updated_at = "2026-11-22T11:42:07.000Z".into();
    app.update(Msg::Threads(Ok(vec![
        busy,
        thread("0192f0c2-7b4e-7000-8000-000000000001", "release notes", 120, false),
        thread(
            "0192e011-7b4e-7000-8000-000000000003",
            "a long title that has to give way on a narrow screen",
            7,
            false,
        ),
    ])));
    key(&mut app, KeyCode::Down);
    insta::assert_snapshot!(render(&app, 80, 24).backend());
}

#[test]
fn busy_notice() {
    let mut app = shared_app();
    Feed { app: &mut app }.started("0192f0c2-aaaa-7000-8000-000000000009", "a long refactor", script());
    type_text(&mut app, "my question");
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!(render(&app, 80, 24).backend());
    // The server's busy answer (the TUI thought the thread idle) reads the same.
    let mut app = shared_app();
    type_text(&mut app, "second try");
    let effects = key(&mut app, KeyCode::Enter);
    assert_eq!(effects.len(), 1);
    app.update(Msg::SubmitFailed {
        text: "second try".into(),
        error: SubmitError::Busy { turn_id: "0192f0c2-bbbb-7000-8000-000000000009".into(), started_by: Some(peer()) },
    });
    assert_eq!(app.composer.text(), "second try");
    let screen = format!("{}", render(&app, 80, 24).backend());
    assert!(screen.contains("busy — turn 0192f0c2 running (started by tandem-tui (bob, 77c1))"), "{screen}");
}

#[test]
fn slash_popup() {
    let mut app = local_app();
    type_text(&mut app, "/s");
    insta::assert_snapshot!(render(&app, 80, 24).backend());
}

#[test]
fn shared_info_after_starting_to_share() {
    let mut app = shared_app();
    app.update(Msg::SharingStarted { thread_id: THREAD.into(), http: false });
    insta::assert_snapshot!(render(&app, 100, 24).backend());
}

#[test]
fn narrow_terminal() {
    let mut app = shared_app();
    Feed { app: &mut app }.turn(
        "u1",
        "a prompt long enough to wrap on a narrow screen",
        peer(),
        "and an answer that wraps as well, word by word",
    );
    type_text(&mut app, "typing here");
    insta::assert_snapshot!(render(&app, 40, 20).backend());
}

#[test]
fn connection_lost() {
    let mut app = shared_app();
    Feed { app: &mut app }.turn("u1", "before the outage", peer(), "fine");
    app.update(Msg::ConnLost { reason: "Connection refused (os error 111)".into() });
    insta::assert_snapshot!(render(&app, 80, 24).backend());
}

#[test]
fn agent_actions_show_between_prompt_and_answer() {
    let mut app = shared_app();
    let mut feed = Feed { app: &mut app };
    feed.started("u1", "fix the greeting typo", script());
    feed.item("u1", serde_json::json!({"id": "s", "type": "agentSession", "agent": "codex", "sessionId": "0199"}));
    feed.item(
        "u1",
        serde_json::json!({"id": "c", "type": "commandExecution", "command": "cat src/greet.rs",
        "output": "pub fn greet() -> &'static str {\n    \"helo\"\n}", "exitCode": 0, "status": "completed"}),
    );
    feed.item("u1", serde_json::json!({"id": "f", "type": "fileChange", "changes": [{"path": "src/greet.rs", "kind": "update"}], "status": "completed"}));
    feed.delta("u1", "Fixed the typo in src/greet.rs.");
    feed.completed("u1", TurnStatus::Completed, None);
    insta::assert_snapshot!(render(&app, 80, 24).backend());
}

#[test]
fn imported_turns_show_how_they_really_ended_and_who_answered() {
    let mut app = local_app();
    let mut feed = Feed { app: &mut app };
    let openai = tandem_protocol::AgentInfo { kind: "openai".into(), model: Some("gpt-x".into()) };
    let echo = tandem_protocol::AgentInfo { kind: "echo".into(), model: None };
    feed.imported("u1", "summarize the diff", me(), openai, "Two files change.", (TurnStatus::Completed, None));
    feed.imported(
        "u2",
        "a long job",
        me(),
        echo.clone(),
        "halfway",
        (TurnStatus::Interrupted, Some("interrupted by tandem-tui (ada, 3f2a) 0.1.0")),
    );
    feed.imported(
        "u3",
        "still going when I left",
        peer(),
        echo,
        "so far",
        (TurnStatus::Interrupted, Some(tandem_tui::transcript::CUT_SHORT_BY_STOP)),
    );
    insta::assert_snapshot!(render(&app, 80, 24).backend());
}

#[test]
fn flags_and_zwj_emoji_keep_lines_and_borders_straight() {
    let mut app = shared_app();
    let family = "👩\u{200d}👩\u{200d}👧";
    let answer =
        format!("{} {family}{family}{family}{family}{family}{family}{family}{family}{family}{family}", "🇫🇷".repeat(18));
    Feed { app: &mut app }.turn("u1", &format!("flags 🇫🇷🇩🇪 and a family {family}"), peer(), &answer);
    type_text(&mut app, &format!("bonjour 🇫🇷 {family} ok"));
    let terminal = render(&app, 40, 16);
    // No regional indicator is left alone in a cell: every flag is drawn whole.
    let lone = |s: &str| {
        let mut cs = s.chars();
        matches!((cs.next(), cs.next()), (Some('\u{1F1E6}'..='\u{1F1FF}'), None))
    };
    assert!(!terminal.backend().buffer().content.iter().any(|c| lone(c.symbol())), "{}", terminal.backend());
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn the_composer_wraps_grows_and_scrolls() {
    let mut app = local_app();
    type_text(&mut app, &"a long prompt that keeps going ".repeat(4));
    insta::assert_snapshot!("composer_grows", render(&app, 50, 16).backend());
    type_text(&mut app, &"and going ".repeat(30));
    let terminal = render(&app, 50, 16);
    let screen = format!("{}", terminal.backend());
    assert!(screen.contains("and going"), "the cursor's row is in view: {screen}");
    insta::assert_snapshot!("composer_scrolls", terminal.backend());
}

#[test]
fn the_header_shows_as_much_of_the_id_as_is_unique() {
    let mut app = shared_app();
    // Another thread made in the same minute shares the first 13 characters.
    app.update(Msg::KnownThreads(vec![THREAD.into(), "0192f0c2-7b4e-7fff-8000-000000000000".into()]));
    assert_eq!(app.short_thread(), "0192f0c2-7b4e-7c");
    insta::assert_snapshot!(render(&app, 80, 8).backend());
}

#[test]
fn share_menu_in_shared_mode_on_a_small_screen() {
    let mut app = shared_app();
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    let terminal = render(&app, 50, 14);
    let screen = format!("{}", terminal.backend());
    for action in tandem_tui::app::SHARE_ACTIONS {
        assert!(screen.contains(action), "{action} is cut off:\n{screen}");
    }
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn scrolled_up_says_so_and_flags_new_messages() {
    let mut app = shared_app();
    for i in 0..8 {
        Feed { app: &mut app }.turn(&format!("u{i}"), &format!("prompt {i}"), peer(), "answer");
    }
    key(&mut app, KeyCode::PageUp);
    Feed { app: &mut app }.started("u9", "arrives while scrolled up", script());
    insta::assert_snapshot!(render(&app, 60, 16).backend());
    key(&mut app, KeyCode::End);
    assert_eq!(app.scroll, 0);
    let screen = format!("{}", render(&app, 60, 16).backend());
    assert!(screen.contains("arrives while scrolled up") && !screen.contains("scrolled up —"), "{screen}");
}

#[test]
fn the_join_picker_scrolls_to_the_highlighted_thread() {
    let mut app = local_app();
    type_text(&mut app, "/share");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('2'));
    let threads = (0..15)
        .map(|i| thread(&format!("0192f0c2-0000-7000-8000-0000000000{i:02}"), &format!("thread number {i}"), 3, false));
    app.update(Msg::Threads(Ok(threads.collect())));
    for _ in 0..12 {
        key(&mut app, KeyCode::Down);
    }
    let screen = format!("{}", render(&app, 90, 30).backend());
    assert!(screen.contains("› 0192f0c2-0000-7000-8000-000000000012 "), "{screen}");
    assert!(!screen.contains("000000000002 ") && screen.contains("000000000003 "), "{screen}");
    assert!(screen.contains("4–13 of 15"), "{screen}");
}

#[test]
fn an_interrupt_once_done_leaves_only_the_turn_saying_so() {
    let mut app = shared_app();
    Feed { app: &mut app }.started("u1", "a long job", me());
    Feed { app: &mut app }.delta("u1", "partial");
    ctrl(&mut app, 'c');
    let during = format!("{}", render(&app, 60, 12).backend());
    assert!(during.contains("interrupting turn u1"), "{during}");
    Feed { app: &mut app }.completed(
        "u1",
        TurnStatus::Interrupted,
        Some("interrupted by tandem-tui (ada, 3f2a) 0.1.0"),
    );
    insta::assert_snapshot!(render(&app, 60, 12).backend());
}

#[test]
fn what_is_being_read_stays_put_while_new_messages_arrive() {
    let mut app = shared_app();
    for i in 0..8 {
        Feed { app: &mut app }.turn(&format!("u{i}"), &format!("prompt {i}"), peer(), "answer");
    }
    render(&app, 60, 16);
    key(&mut app, KeyCode::PageUp);
    let rows = |app: &tandem_tui::app::App| tandem_tui::ui::visible_lines(app, 60, 10);
    let before = rows(&app);
    let mut feed = Feed { app: &mut app };
    feed.started("u9", "arrives while scrolled up", script());
    feed.delta("u9", "streaming a few words");
    assert_eq!(rows(&app), before, "the view moved under the reader");
    assert!(app.unseen);
    key(&mut app, KeyCode::End);
    assert!(format!("{:?}", rows(&app)).contains("arrives while scrolled up"));
}

#[test]
fn shared_info_with_a_web_link() {
    let mut app = shared_app();
    app.update(Msg::SharingStarted { thread_id: THREAD.into(), http: true });
    let url = format!("http://127.0.0.1:7878/t/{THREAD}#k=0192f0c2aa.{}", "x".repeat(43));
    app.update(Msg::LinkCreated(Ok(url.clone())));
    let terminal = render(&app, 120, 24);
    let screen = format!("{}", terminal.backend());
    assert!(screen.contains(&url), "the link is on one line:\n{screen}");
    insta::assert_snapshot!(terminal.backend());
}
