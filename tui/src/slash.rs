//! Slash commands. The enum's order is the popup's order.

/// A command typed as `/name` in the composer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlashCommand {
    Share,
    Status,
    Help,
    Quit,
}

impl SlashCommand {
    pub const ALL: [SlashCommand; 4] =
        [SlashCommand::Share, SlashCommand::Status, SlashCommand::Help, SlashCommand::Quit];

    pub fn name(self) -> &'static str {
        match self {
            SlashCommand::Share => "share",
            SlashCommand::Status => "status",
            SlashCommand::Help => "help",
            SlashCommand::Quit => "quit",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            SlashCommand::Share => "share this session, join one, or stop sharing",
            SlashCommand::Status => "mode, thread, server and turn",
            SlashCommand::Help => "keys and commands",
            SlashCommand::Quit => "leave Tandem",
        }
    }

    /// The command named exactly `name` (without the slash).
    pub fn parse(name: &str) -> Option<SlashCommand> {
        SlashCommand::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Commands matching what is typed after the slash: prefix matches first,
    /// then other substring matches, each in table order.
    pub fn matching(typed: &str) -> Vec<SlashCommand> {
        let typed = typed.to_ascii_lowercase();
        let (mut prefix, mut other): (Vec<_>, Vec<_>) = SlashCommand::ALL
            .into_iter()
            .filter(|c| c.name().contains(&typed))
            .partition(|c| c.name().starts_with(&typed));
        prefix.append(&mut other);
        prefix
    }
}

/// What follows the slash, when the composer holds a command being typed.
pub fn typed_command(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('/')?;
    (!rest.contains(char::is_whitespace)).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_in_table_order_prefixes_first() {
        assert_eq!(SlashCommand::matching(""), SlashCommand::ALL.to_vec());
        assert_eq!(SlashCommand::matching("s"), vec![SlashCommand::Share, SlashCommand::Status]);
        assert_eq!(SlashCommand::matching("t"), vec![SlashCommand::Status, SlashCommand::Quit]);
        assert_eq!(SlashCommand::matching("q"), vec![SlashCommand::Quit]);
        assert!(SlashCommand::matching("zz").is_empty());
        assert_eq!(typed_command("/sh"), Some("sh"));
        assert_eq!(typed_command("/share now"), None);
        assert_eq!(typed_command("hello"), None);
    }
}
