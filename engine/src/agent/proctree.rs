//! A turn subprocess's descendants, found through `/proc`. Agent CLIs start
//! commands in sessions of their own (codex and claude both `setsid` them), so
//! signalling the turn's process group does not reach them; these helpers
//! remember every descendant while the tree is still connected and kill the
//! ones still running once the turn is over. Never signals a process that is
//! not a remembered descendant (a pid is matched with its start time, so a
//! recycled pid is left alone).

use std::collections::{HashMap, HashSet};

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Proc {
    pub pid: i32,
    start: u64,
}

/// The descendants of a process seen so far.
#[derive(Debug, Default)]
pub(super) struct Descendants {
    seen: HashSet<Proc>,
}

impl Descendants {
    /// Adds every process currently below `root` (not `root` itself).
    pub fn refresh(&mut self, root: u32) {
        let table = process_table();
        let mut children: HashMap<i32, Vec<Proc>> = HashMap::new();
        for (proc_, ppid) in &table {
            children.entry(*ppid).or_default().push(*proc_);
        }
        let mut stack = vec![root as i32];
        while let Some(pid) = stack.pop() {
            for child in children.get(&pid).into_iter().flatten() {
                self.seen.insert(*child);
                stack.push(child.pid);
            }
        }
    }

    /// SIGKILLs every remembered descendant that is still the same process.
    /// Returns how many were still running.
    pub fn kill_survivors(&self) -> usize {
        let mut killed = 0;
        for p in &self.seen {
            if start_time(p.pid) == Some(p.start) {
                // SAFETY: kill(2) on a pid we just checked is our descendant
                // (same pid and start time as when it was seen below the child).
                unsafe {
                    libc::kill(p.pid, libc::SIGKILL);
                }
                killed += 1;
            }
        }
        killed
    }
}

/// Every process's (pid, start time) and parent pid.
fn process_table() -> Vec<(Proc, i32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|entry| {
        let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let (ppid, start) = stat(pid)?;
        Some((Proc { pid, start }, ppid))
    })
    .collect()
}

fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

/// Parent pid and start time from `/proc/PID/stat` (fields 4 and 22; the
/// command name in field 2 may contain spaces and parentheses, so parse after
/// its last `)`). A zombie counts as gone.
fn stat(pid: i32) -> Option<(i32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state).
    if fields.first() == Some(&"Z") {
        return None;
    }
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_kills_a_grandchild_in_its_own_session() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "setsid sleep 1000 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        let grandchild: i32 = line.trim().parse().unwrap();
        let mut tree = Descendants::default();
        tree.refresh(child.id());
        assert!(tree.seen.iter().any(|p| p.pid == grandchild), "{tree:?} lacks {grandchild}");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(tree.kill_survivors() >= 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while start_time(grandchild).is_some() {
            assert!(std::time::Instant::now() < deadline, "{grandchild} survived");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
