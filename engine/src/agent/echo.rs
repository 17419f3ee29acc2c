//! `echo`: the built-in, deterministic agent. It streams the prompt's words back,
//! one delta per word, optionally waiting between them so turns can be slow for
//! demos and tests.

use std::time::Duration;

use tandem_protocol::AgentInfo;

use super::{Agent, BoxFuture, Cancel, DeltaSink, Outcome, TurnInput};

/// Echoes the prompt word by word.
#[derive(Debug, Clone, Default)]
pub struct EchoAgent {
    /// Pause before each delta after the first.
    pub delay: Duration,
}

impl Agent for EchoAgent {
    fn info(&self) -> AgentInfo {
        AgentInfo { kind: "echo".into(), model: None }
    }

    fn run<'a>(&'a self, input: TurnInput, out: &'a mut dyn DeltaSink, mut cancel: Cancel) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let words: Vec<&str> = input.input.split_whitespace().collect();
            for (i, word) in words.iter().enumerate() {
                if i > 0 && !self.delay.is_zero() {
                    tokio::select! {
                        reason = cancel.cancelled() => return Outcome::Interrupted(reason),
                        _ = tokio::time::sleep(self.delay) => {}
                    }
                }
                if cancel.is_cancelled() {
                    return Outcome::Interrupted(cancel.reason());
                }
                if i % 64 == 63 {
                    // A long prompt with no delay must not hold a worker thread.
                    tokio::task::yield_now().await;
                }
                if i + 1 < words.len() {
                    out.delta(&format!("{word} "));
                } else {
                    out.delta(word);
                }
            }
            Outcome::Completed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<String>);
    impl DeltaSink for Collect {
        fn delta(&mut self, text: &str) {
            self.0.push(text.to_owned());
        }
    }

    fn input(text: &str) -> TurnInput {
        TurnInput { thread_id: "t".into(), turn_id: "u".into(), input: text.into(), ..Default::default() }
    }

    #[tokio::test]
    async fn one_delta_per_word() {
        let mut out = Collect(Vec::new());
        let outcome = EchoAgent::default().run(input("  hello   big\nworld "), &mut out, Cancel::never()).await;
        assert_eq!(outcome, Outcome::Completed);
        assert_eq!(out.0, ["hello ", "big ", "world"]);
    }

    #[tokio::test]
    async fn stops_when_interrupted() {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let agent = EchoAgent { delay: Duration::from_secs(3600) };
        let mut out = Collect(Vec::new());
        let run = agent.run(input("a b c"), &mut out, Cancel::new(rx));
        tx.send(Some("stop".into())).unwrap();
        assert_eq!(run.await, Outcome::Interrupted(Some("stop".into())));
        assert!(out.0.is_empty(), "{:?}", out.0);
    }
}
