//! Which agent answers turns, and its settings. Each setting comes from the
//! first place that has it: command-line flag, then environment variable, then
//! `$TANDEM_HOME/config.toml`, then the built-in default (the `echo` agent).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::agent::{Agent, CliAgent, CliKind, CliSettings, EchoAgent, ExecAgent, OpenAiAgent, OpenAiSettings};
use tandem_home::Home;

/// The agent kinds, as named in flags, `TANDEM_AGENT` and the config file.
pub const AGENT_KINDS: &[&str] = &["echo", "exec", "openai", "codex", "claude"];

/// What can be wrong with the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// `config.toml`, as written by the user. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub agent: Option<String>,
    /// The directory the exec, codex and claude agents run in.
    pub cwd: Option<PathBuf>,
    pub echo: Option<EchoFile>,
    pub exec: Option<ExecFile>,
    pub openai: Option<OpenAiFile>,
    pub codex: Option<CliFile>,
    pub claude: Option<CliFile>,
    /// Per destination of shared sessions (a hub's URL, or `local`).
    pub hubs: Option<std::collections::BTreeMap<String, HubDestination>>,
    pub hub: Option<HubFile>,
}

/// `[hubs."URL"]`: what may be shared with that destination.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubDestination {
    /// Repositories (normalized `host/org/repo`) whose sessions may be shared.
    pub allowed_repos: Option<Vec<String>>,
}

/// `[hub]`: where `tandem share link` shares by default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubFile {
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoFile {
    pub delay_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecFile {
    pub command: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiFile {
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub api_key_env: Option<String>,
    pub timeout_secs: Option<u64>,
    pub system_prompt: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CliFile {
    pub program: Option<String>,
    pub model: Option<String>,
    pub args: Option<Vec<String>>,
}

/// Settings given by flag or environment (`None`: not given there).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub agent: Option<String>,
    pub cwd: Option<PathBuf>,
    pub echo_delay_ms: Option<u64>,
    pub exec_command: Vec<String>,
    pub model: Option<String>,
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    pub timeout_secs: Option<u64>,
    pub system_prompt: Option<String>,
}

impl Overrides {
    /// The settings given by environment variables (what the TUI, which has no
    /// agent flags, goes by; `tandem app-server` reads the same names).
    pub fn from_env() -> Overrides {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Overrides {
            agent: var("TANDEM_AGENT"),
            cwd: var("TANDEM_AGENT_CWD").map(PathBuf::from),
            echo_delay_ms: var("TANDEM_ECHO_DELAY_MS").and_then(|v| v.parse().ok()),
            exec_command: Vec::new(),
            model: var("TANDEM_MODEL"),
            base_url: var("TANDEM_BASE_URL"),
            api_key_env: var("TANDEM_API_KEY_ENV"),
            timeout_secs: var("TANDEM_REQUEST_TIMEOUT").and_then(|v| v.parse().ok()),
            system_prompt: var("TANDEM_SYSTEM_PROMPT"),
        }
    }
}

/// The resolved agent configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    pub kind: String,
    /// Where command agents run (default: the app-server's directory).
    pub cwd: Option<PathBuf>,
    pub echo_delay: Duration,
    pub exec_command: Vec<String>,
    pub openai: OpenAiSettings,
    pub codex: CliSettings,
    pub claude: CliSettings,
}

impl FileConfig {
    /// Reads `path`; a missing file is an empty configuration.
    pub fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileConfig::default()),
            Err(source) => return Err(ConfigError::Read { path: path.to_owned(), source }),
        };
        FileConfig::parse(path, &text)
    }

    /// Parses the text of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: describe_toml_error(text, &e) })
    }
}

/// Where a home's configuration file is.
pub fn config_path(home: &Home) -> PathBuf {
    home.dir().join("config.toml")
}

impl AgentSettings {
    /// Resolves flag/env `overrides` over `file` over the defaults.
    pub fn resolve(overrides: &Overrides, file: &FileConfig) -> Result<AgentSettings, ConfigError> {
        let kind = overrides.agent.clone().or_else(|| file.agent.clone()).unwrap_or_else(|| "echo".into());
        if !AGENT_KINDS.contains(&kind.as_str()) {
            return Err(ConfigError::Invalid(format!("unknown agent {kind:?}; accepted: {}", AGENT_KINDS.join(", "))));
        }
        let echo = file.echo.as_ref();
        let exec = file.exec.as_ref();
        let openai = file.openai.as_ref();
        let exec_command = if overrides.exec_command.is_empty() {
            exec.and_then(|e| e.command.clone()).unwrap_or_default()
        } else {
            overrides.exec_command.clone()
        };
        // `--model` / TANDEM_MODEL applies to whichever agent is chosen.
        let model_for = |k: &str, file_model: Option<&String>| {
            if kind == k { overrides.model.clone().or_else(|| file_model.cloned()) } else { file_model.cloned() }
        };
        let cli = |k: &str, f: Option<&CliFile>| CliSettings {
            program: f.and_then(|f| f.program.clone()).unwrap_or_else(|| k.to_owned()),
            model: model_for(k, f.and_then(|f| f.model.as_ref())),
            args: f.and_then(|f| f.args.clone()).unwrap_or_default(),
        };
        let settings = AgentSettings {
            echo_delay: Duration::from_millis(
                overrides.echo_delay_ms.or_else(|| echo.and_then(|e| e.delay_ms)).unwrap_or(0),
            ),
            exec_command,
            openai: OpenAiSettings {
                base_url: overrides
                    .base_url
                    .clone()
                    .or_else(|| openai.and_then(|o| o.base_url.clone()))
                    .unwrap_or_else(|| "https://api.openai.com/v1".into()),
                model: model_for("openai", openai.and_then(|o| o.model.as_ref()))
                    .unwrap_or_else(|| "gpt-4o-mini".into()),
                api_key_env: overrides
                    .api_key_env
                    .clone()
                    .or_else(|| openai.and_then(|o| o.api_key_env.clone()))
                    .unwrap_or_else(|| "OPENAI_API_KEY".into()),
                timeout: Duration::from_secs(
                    overrides.timeout_secs.or_else(|| openai.and_then(|o| o.timeout_secs)).unwrap_or(120),
                ),
                system_prompt: overrides.system_prompt.clone().or_else(|| openai.and_then(|o| o.system_prompt.clone())),
            },
            codex: cli("codex", file.codex.as_ref()),
            claude: cli("claude", file.claude.as_ref()),
            cwd: overrides.cwd.clone().or_else(|| file.cwd.clone()),
            kind,
        };
        if settings.kind == "exec" && settings.exec_command.is_empty() {
            return Err(ConfigError::Invalid(
                "the exec agent needs a command: `tandem app-server --agent exec -- COMMAND ARGS…` or [exec] command = [\"…\"] in config.toml".into(),
            ));
        }
        if let Some(dir) = &settings.cwd
            && !dir.is_dir()
        {
            return Err(ConfigError::Invalid(format!("the agent directory {} does not exist", dir.display())));
        }
        if settings.openai.timeout.is_zero() {
            return Err(ConfigError::Invalid("the request timeout must be at least 1 second".into()));
        }
        Ok(settings)
    }

    /// Loads `config.toml` of `home` and resolves.
    pub fn load(home: &Home, overrides: &Overrides) -> Result<AgentSettings, ConfigError> {
        AgentSettings::resolve(overrides, &FileConfig::read(&config_path(home))?)
    }

    /// The agent these settings describe.
    pub fn build(&self) -> Result<Arc<dyn Agent>, ConfigError> {
        Ok(match self.kind.as_str() {
            "exec" => Arc::new(
                ExecAgent::new(self.exec_command.clone())
                    .ok_or_else(|| ConfigError::Invalid("the exec agent needs a command".into()))?
                    .in_dir(self.cwd.clone()),
            ),
            "openai" => Arc::new(OpenAiAgent::new(self.openai.clone()).map_err(ConfigError::Invalid)?),
            "codex" => Arc::new(CliAgent::new(CliKind::Codex, self.codex.clone()).in_dir(self.cwd.clone())),
            "claude" => Arc::new(CliAgent::new(CliKind::Claude, self.claude.clone()).in_dir(self.cwd.clone())),
            _ => Arc::new(EchoAgent { delay: self.echo_delay }),
        })
    }
}

/// Where and what is wrong in config.toml, without echoing the line: a
/// rejected line may hold a secret (an API key pasted in the wrong place).
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let at = e.span().map(|span| {
        let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
        format!("line {line}: ")
    });
    format!("{}{}", at.unwrap_or_default(), hide_quoted(e.message()))
}

/// `text` with the contents of double-quoted strings (values) hidden; field
/// names, which TOML errors quote with backticks, stay.
fn hide_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut parts = text.split('"');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        out.push('"');
        out.push_str(if i % 2 == 0 { "…" } else { part });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> FileConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_to_echo() {
        let s = AgentSettings::resolve(&Overrides::default(), &FileConfig::default()).unwrap();
        assert_eq!(s.kind, "echo");
        assert_eq!(s.echo_delay, Duration::ZERO);
        assert_eq!(s.openai.api_key_env, "OPENAI_API_KEY");
    }

    #[test]
    fn flag_or_env_beats_file_beats_default() {
        let f = file(
            r#"
            agent = "openai"
            [openai]
            model = "from-file"
            base_url = "http://file:1/v1"
            timeout_secs = 9
            [echo]
            delay_ms = 5
            "#,
        );
        let s = AgentSettings::resolve(&Overrides::default(), &f).unwrap();
        assert_eq!((s.kind.as_str(), s.openai.model.as_str()), ("openai", "from-file"));
        assert_eq!(s.openai.timeout, Duration::from_secs(9));
        assert_eq!(s.echo_delay, Duration::from_millis(5));
        let o = Overrides { model: Some("from-flag".into()), echo_delay_ms: Some(7), ..Default::default() };
        let s = AgentSettings::resolve(&o, &f).unwrap();
        assert_eq!(s.openai.model, "from-flag");
        assert_eq!(s.openai.base_url, "http://file:1/v1");
        assert_eq!(s.echo_delay, Duration::from_millis(7));
        let o = Overrides { agent: Some("echo".into()), model: Some("x".into()), ..Default::default() };
        let s = AgentSettings::resolve(&o, &f).unwrap();
        assert_eq!(s.kind, "echo");
        assert_eq!(s.openai.model, "from-file", "--model applies to the chosen agent only");
    }

    #[test]
    fn bad_settings_say_what_is_accepted() {
        let e = AgentSettings::resolve(
            &Overrides { agent: Some("gpt".into()), ..Default::default() },
            &FileConfig::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("echo, exec, openai, codex, claude"), "{e}");
        let e = AgentSettings::resolve(
            &Overrides { agent: Some("exec".into()), ..Default::default() },
            &FileConfig::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs a command"), "{e}");
        let err = toml::from_str::<FileConfig>("agnet = \"echo\"").unwrap_err().to_string();
        assert!(err.contains("agnet"), "{err}");
    }
}
