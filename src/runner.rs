//! The one way zshield runs other programs: it logs the command line, captures
//! what the program says and fails with the command, its exit and its words.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How a program run with a time limit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// None when a signal ended it.
    pub code: Option<i32>,
    /// It ran past its limit and was killed.
    pub timed_out: bool,
}

/// Microseconds this process has spent waiting for the programs it ran
/// (`run` and `run_streaming`): what is left of a run's time is zshield's own.
static TIME_IN_TOOLS_US: AtomicU64 = AtomicU64::new(0);

fn count_time(started: Instant) {
    TIME_IN_TOOLS_US.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
}

/// How long this process has waited for the programs it ran so far.
pub fn time_in_tools() -> Duration {
    Duration::from_micros(TIME_IN_TOOLS_US.load(Ordering::Relaxed))
}

#[derive(Debug, Clone)]
pub struct Cmd {
    program: String,
    args: Vec<OsString>,
    root: Option<PathBuf>,
    dir: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl Cmd {
    pub fn new(program: &str) -> Cmd {
        Cmd {
            program: program.to_string(),
            args: Vec::new(),
            root: None,
            dir: None,
            env: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Cmd {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Runs the program inside `root` (chroot), as the target system's own tool.
    pub fn chroot(mut self, root: &Path) -> Cmd {
        self.root = Some(root.to_path_buf());
        self
    }

    /// Runs the program in `dir` (outside a chroot).
    pub fn current_dir(mut self, dir: &Path) -> Cmd {
        self.dir = Some(dir.to_path_buf());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Cmd {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The command line as a shell user would type it, for logs and errors.
    pub fn line(&self) -> String {
        let mut words = Vec::new();
        if let Some(dir) = &self.dir {
            words.push(format!("cd {} &&", dir.display()));
        }
        if let Some(root) = &self.root {
            words.push(format!("chroot {}", root.display()));
        }
        words.push(self.program.clone());
        for a in &self.args {
            let a = a.to_string_lossy();
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "\"'{}|;".contains(c)) {
                words.push(format!("'{a}'"));
            } else {
                words.push(a.into_owned());
            }
        }
        words.join(" ")
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args).stdin(Stdio::null()).env("LC_ALL", "C");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(dir) = &self.dir {
            c.current_dir(dir);
        }
        if let Some(root) = self.root.clone() {
            c.env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            );
            // SAFETY: between fork and exec only async-signal-safe calls are made
            // (chroot and chdir are system calls).
            unsafe {
                c.pre_exec(move || {
                    nix::unistd::chroot(&root)?;
                    nix::unistd::chdir("/")?;
                    Ok(())
                });
            }
        }
        c
    }

    /// Runs to the end; fails unless the exit status is 0. Returns stdout.
    pub fn run(&self) -> Result<String> {
        log::debug!("$ {}", self.line());
        let started = Instant::now();
        let out = self.command().output();
        count_time(started);
        let out = out.with_context(|| format!("cannot start `{}`", self.line()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        log_lines(&stderr);
        if !out.status.success() {
            bail!(self.failure(out.status, &stderr, &stdout));
        }
        Ok(stdout)
    }

    /// Runs to the end, handing every line of stdout (split at `\r` too, for
    /// progress meters) to `on_line`, and logging stderr.
    pub fn run_streaming(&self, mut on_line: impl FnMut(&str)) -> Result<()> {
        log::debug!("$ {}", self.line());
        let started = Instant::now();
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{}`", self.line()))?;
        let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
        let stderr_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text);
            text
        });
        let mut reader = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = read_until_any(&mut reader, &mut buf)?;
            if n == 0 {
                break;
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim();
            if !line.is_empty() {
                on_line(line);
            }
        }
        let status = child.wait();
        count_time(started);
        let status = status?;
        let stderr = stderr_reader.join().unwrap_or_default();
        log_lines(&stderr);
        if !status.success() {
            bail!(self.failure(status, &stderr, ""));
        }
        Ok(())
    }

    /// Runs with stdout and stderr as one stream of lines for `on_line`, in
    /// a process group of its own that is killed past `limit` (and when the
    /// program ends, so that nothing it left behind keeps running). A non-zero
    /// exit is not an error here: the caller judges the result.
    pub fn run_limited(&self, limit: Duration, mut on_line: impl FnMut(&str)) -> Result<Finished> {
        log::debug!("$ {} (limit {} s)", self.line(), limit.as_secs());
        let (reader, writer) = std::io::pipe().context("cannot create a pipe")?;
        let mut command = self.command();
        command
            .stdout(writer.try_clone().context("cannot duplicate a pipe")?)
            .stderr(writer)
            .process_group(0);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start `{}`", self.line()))?;
        // Our copies of the pipe's write end must go, or the reader never ends.
        drop(command);
        let group = nix::unistd::Pid::from_raw(child.id() as i32);
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match read_until_any(&mut reader, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).trim().to_string();
                        if !line.is_empty() && lines.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let deadline = Instant::now() + limit;
        let mut timed_out = false;
        let status = loop {
            if let Ok(line) = received.recv_timeout(Duration::from_millis(50)) {
                on_line(&line);
            }
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                timed_out = true;
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                break child.wait()?;
            }
        };
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        // The last lines; a process that escaped the group and holds the pipe
        // must not hold us up.
        let drain_until = Instant::now() + Duration::from_secs(2);
        while let Ok(line) =
            received.recv_timeout(drain_until.saturating_duration_since(Instant::now()))
        {
            on_line(&line);
        }
        Ok(Finished {
            code: status.code(),
            timed_out,
        })
    }

    fn failure(&self, status: std::process::ExitStatus, stderr: &str, stdout: &str) -> String {
        let words = if stderr.trim().is_empty() {
            stdout
        } else {
            stderr
        };
        let last: Vec<&str> = words
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let tail = last[last.len().saturating_sub(3)..].join(" | ");
        let code = status
            .code()
            .map_or_else(|| "a signal".to_string(), |c| format!("exit code {c}"));
        if tail.is_empty() {
            format!("`{}` failed with {code}", self.line())
        } else {
            format!("`{}` failed with {code}: {tail}", self.line())
        }
    }
}

/// Reads up to and including the next `\n` or `\r`.
fn read_until_any(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(total);
        }
        match available.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(i) => {
                buf.extend_from_slice(&available[..=i]);
                reader.consume(i + 1);
                return Ok(total + i + 1);
            }
            None => {
                let n = available.len();
                buf.extend_from_slice(available);
                reader.consume(n);
                total += n;
            }
        }
    }
}

fn log_lines(text: &str) {
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        log::debug!("  | {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_stdout() {
        assert_eq!(Cmd::new("echo").arg("hello").run().unwrap(), "hello\n");
    }

    #[test]
    fn failure_names_the_command_the_exit_and_the_words() {
        let err = Cmd::new("sh")
            .args(["-c", "echo one >&2; echo two >&2; exit 3"])
            .run()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`sh -c 'echo one >&2; echo two >&2; exit 3'` failed with exit code 3: one | two"
        );
    }

    #[test]
    fn a_limited_run_gives_both_streams_in_order_and_its_exit() {
        let mut lines = Vec::new();
        let done = Cmd::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 4"])
            .run_limited(Duration::from_secs(10), |l| lines.push(l.to_string()))
            .unwrap();
        assert_eq!(lines, ["out", "err"]);
        assert_eq!(
            done,
            Finished {
                code: Some(4),
                timed_out: false
            }
        );
    }

    #[test]
    fn a_run_past_its_limit_is_killed_with_what_it_started() {
        let start = Instant::now();
        let mut lines = Vec::new();
        // The background sleep holds the output pipe: it must die with the group.
        let done = Cmd::new("sh")
            .args(["-c", "echo started; sleep 30 & sleep 30"])
            .run_limited(Duration::from_millis(500), |l| lines.push(l.to_string()))
            .unwrap();
        assert!(done.timed_out);
        assert_eq!(done.code, None);
        assert_eq!(lines, ["started"]);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_missing_program_is_a_clear_error() {
        let err = Cmd::new("zshield-no-such-program").run().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot start `zshield-no-such-program`"),
            "{err}"
        );
    }

    #[test]
    fn streams_lines_split_at_carriage_returns() {
        let mut lines = Vec::new();
        Cmd::new("printf")
            .args(["%s", "  10%\r  50%\r 100%\ndone\n"])
            .run_streaming(|l| lines.push(l.to_string()))
            .unwrap();
        assert_eq!(lines, ["10%", "50%", "100%", "done"]);
    }

    #[test]
    fn streaming_failure_is_an_error() {
        let err = Cmd::new("sh")
            .args(["-c", "echo out; echo bad >&2; exit 1"])
            .run_streaming(|_| {})
            .unwrap_err();
        assert!(err.to_string().ends_with("exit code 1: bad"), "{err}");
    }
}
