//! Child processes for tests: their output read as lines, stopped by PID (SIGTERM, then
//! SIGKILL) and reaped when dropped, also when the test panics.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A child process; stopped and reaped on drop.
pub struct Proc {
    pub child: Child,
    /// Its stdout, line by line (empty when stdout was not a pipe).
    pub lines: mpsc::Receiver<String>,
    /// Its stderr, line by line (empty when stderr was not a pipe).
    pub err_lines: mpsc::Receiver<String>,
}

fn read_lines(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

impl Proc {
    /// Starts `cmd` with stdin empty and stdout and stderr read as lines.
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Proc::adopt(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program())),
        )
    }

    /// Takes charge of a child the caller spawned with stdio of its own choosing (a
    /// log file, say); whichever of stdout and stderr is a pipe is read as lines.
    pub fn adopt(mut child: Child) -> Proc {
        let none = || mpsc::channel().1;
        let lines = child.stdout.take().map_or_else(none, read_lines);
        let err_lines = child.stderr.take().map_or_else(none, read_lines);
        Proc {
            child,
            lines,
            err_lines,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits (up to `timeout`) for a line of stdout, or of stderr when `stderr`, that
    /// contains `needle`; the error lists the lines seen instead.
    pub fn wait_for(
        &self,
        needle: &str,
        stderr: bool,
        timeout: Duration,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let rx = if stderr { &self.err_lines } else { &self.lines };
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return Ok(l),
                Ok(l) => seen.push(l),
                Err(_) => break,
            }
        }
        let err: Vec<String> = self.err_lines.try_iter().collect();
        Err(format!(
            "no line with {needle:?}; saw {seen:?}; stderr {err:?}"
        ))
    }

    /// The lines of stdout, then of stderr, that arrived since the last call.
    pub fn seen_lines(&self) -> Vec<String> {
        self.lines
            .try_iter()
            .chain(self.err_lines.try_iter())
            .collect()
    }

    /// The rest of stdout up to its end (the process has exited or closed it), or
    /// what came within `timeout`.
    pub fn rest_of_output(&self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => out.push(l),
                Err(_) => break,
            }
        }
        out
    }

    /// Reads the lines of stdout, then stderr, every 200 ms until `done(all lines so far)`
    /// holds, `deadline` passes or the process exits (said on stderr); returns the lines.
    /// For a VM's serial console: `qemu.watch(deadline, |serial| marker_in(serial))`.
    pub fn watch(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&[String]) -> bool,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            lines.extend(self.seen_lines());
            if done(&lines) || Instant::now() > deadline {
                break;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                eprintln!("{:?} exited early: {st}", self.child.id());
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        lines
    }

    /// SIGTERM, then up to 5 s for the process to exit (SIGKILL after); reaps it.
    /// SIGTERM first so that wrappers such as `timeout` pass it on to their child.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Some(st);
        }
        let _ = kill(Pid::from_raw(self.pid()), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_and_the_process_is_stopped_by_pid() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo ready; echo oops >&2; exec sleep 600"]);
        let mut p = Proc::spawn(c);
        assert_eq!(
            p.wait_for("ready", false, Duration::from_secs(30)),
            Ok("ready".into())
        );
        assert_eq!(
            p.wait_for("oops", true, Duration::from_secs(30)),
            Ok("oops".into())
        );
        let pid = p.pid();
        let st = p.terminate().expect("reaped");
        assert!(!st.success());
        // Reaped: the PID is gone.
        assert!(kill(Pid::from_raw(pid), None).is_err());
    }

    #[test]
    fn drop_stops_the_process() {
        let mut c = Command::new("sleep");
        c.arg("600");
        let p = Proc::spawn(c);
        let pid = p.pid();
        drop(p);
        assert!(kill(Pid::from_raw(pid), None).is_err());
    }

    #[test]
    fn rest_of_output_reads_to_the_end() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo a; echo b"]);
        let p = Proc::spawn(c);
        assert_eq!(p.rest_of_output(Duration::from_secs(30)), ["a", "b"]);
    }
}
