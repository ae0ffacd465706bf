//! Supervised threads: every long-running thread of a process (plan workers, the result
//! monitor, the sweeper, the reconciler, the executor, the HTTP server) runs under a
//! [`Supervisor`]. A thread that ends or panics is logged with its name (`THREAD_DIED`),
//! counted, and started again after a back-off (200 ms, doubling to 10 s); while it is down,
//! `/readyz` answers 503 naming it. A thread that dies `max_failures` times within `window`
//! makes the supervisor give up — in a process, exit with code 70 so that systemd (or any
//! supervisor above it) restarts the whole process. One dead thread never hides behind a green
//! probe, and never silently stops the decisions.

use crate::logfmt;
use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The exit code of a process whose supervisor gave up (EX_SOFTWARE).
pub const GAVE_UP_EXIT_CODE: i32 = 70;

/// When to restart and when to give up.
#[derive(Clone, Debug, PartialEq)]
pub struct RestartPolicy {
    /// The first wait before a restart; it doubles after each failure.
    pub first_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
    /// This many failures of one thread within `window` and the supervisor gives up.
    pub max_failures: usize,
    /// The window of `max_failures`.
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_failures: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// How one supervised thread stands.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ThreadState {
    /// Running now.
    pub up: bool,
    /// How often it was started again.
    pub restarts: u64,
    /// Why it last ended.
    pub last_failure: Option<String>,
}

type GiveUp = Box<dyn Fn(&str) + Send + Sync>;

struct Inner {
    threads: Mutex<BTreeMap<String, ThreadState>>,
    policy: RestartPolicy,
    give_up: GiveUp,
}

/// The threads of one process and what became of them.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("threads", &self.states())
            .finish()
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

impl Supervisor {
    /// A supervisor with `policy` that calls `give_up` with the thread's name when one keeps
    /// dying (and stops restarting that thread).
    pub fn new(policy: RestartPolicy, give_up: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Supervisor {
            inner: Arc::new(Inner {
                threads: Mutex::new(BTreeMap::new()),
                policy,
                give_up: Box::new(give_up),
            }),
        }
    }

    /// The process's supervisor: the default policy; giving up exits the process.
    pub fn for_process() -> Self {
        Supervisor::new(RestartPolicy::default(), |name| {
            logfmt::line(
                "SUPERVISOR_GAVE_UP",
                &[
                    ("thread", name.to_owned()),
                    ("exit_code", GAVE_UP_EXIT_CODE.to_string()),
                ],
            );
            // The lines that say why the process ends must reach the log before it does.
            logfmt::flush();
            std::process::exit(GAVE_UP_EXIT_CODE);
        })
    }

    fn set(&self, name: &str, f: impl FnOnce(&mut ThreadState)) {
        let mut threads = self.inner.threads.lock().unwrap_or_else(|p| p.into_inner());
        f(threads.entry(name.to_owned()).or_default());
    }

    /// Runs `run` on a thread named `name`, again after each end or panic. `run` is the
    /// thread's whole life: it returns only when the thread has stopped working.
    pub fn spawn(
        &self,
        name: &str,
        mut run: impl FnMut() + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        let me = self.clone();
        let name = name.to_owned();
        me.set(&name, |t| t.up = true);
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let policy = me.inner.policy.clone();
                let mut failures: VecDeque<Instant> = VecDeque::new();
                let mut backoff = policy.first_backoff;
                loop {
                    me.set(&name, |t| t.up = true);
                    let why = match catch_unwind(AssertUnwindSafe(&mut run)) {
                        Ok(()) => "the thread ended".to_owned(),
                        Err(payload) => format!("panicked: {}", panic_text(payload.as_ref())),
                    };
                    me.set(&name, |t| {
                        t.up = false;
                        t.last_failure = Some(why.clone());
                    });
                    crate::metrics::global().thread_died(&name);
                    let now = Instant::now();
                    failures.push_back(now);
                    while failures
                        .front()
                        .is_some_and(|t| now.duration_since(*t) > policy.window)
                    {
                        failures.pop_front();
                    }
                    logfmt::line(
                        "THREAD_DIED",
                        &[
                            ("thread", name.clone()),
                            ("reason", why),
                            ("failures_in_window", failures.len().to_string()),
                            ("restart_in_ms", backoff.as_millis().to_string()),
                        ],
                    );
                    if failures.len() >= policy.max_failures {
                        (me.inner.give_up)(&name);
                        return;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(policy.max_backoff);
                    me.set(&name, |t| t.restarts += 1);
                    logfmt::line("THREAD_RESTARTED", &[("thread", name.clone())]);
                }
            })
            .expect("the OS starts a thread")
    }

    /// Every supervised thread and how it stands.
    pub fn states(&self) -> BTreeMap<String, ThreadState> {
        self.inner
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The threads that are not running now.
    pub fn down(&self) -> Vec<String> {
        self.states()
            .into_iter()
            .filter(|(_, t)| !t.up)
            .map(|(n, _)| n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    fn quick(max_failures: usize) -> RestartPolicy {
        RestartPolicy {
            first_backoff: Duration::from_millis(300),
            max_backoff: Duration::from_millis(300),
            max_failures,
            window: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_panicking_thread_is_restarted_and_shown_down_meanwhile() {
        let (gave_up_tx, _gave_up_rx) = mpsc::channel::<String>();
        let gave_up_tx = Mutex::new(gave_up_tx);
        let sup = Supervisor::new(quick(5), move |n| {
            gave_up_tx.lock().unwrap().send(n.to_owned()).unwrap()
        });
        let runs = Arc::new(AtomicUsize::new(0));
        let (started_tx, started_rx) = mpsc::channel();
        let (panicked_tx, panicked_rx) = mpsc::channel::<()>();
        let counted = runs.clone();
        sup.spawn("worker-1", move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            started_tx.send(n).unwrap();
            if n == 0 {
                panicked_tx.send(()).unwrap();
                panic!("bad exchange answer");
            }
            // The second life works (until the test ends).
            std::thread::park();
        });
        assert_eq!(started_rx.recv().unwrap(), 0);
        panicked_rx.recv().unwrap();
        // Down between the panic and the restart (the back-off is 300 ms).
        let deadline = Instant::now() + Duration::from_secs(5);
        while sup.down().is_empty() {
            assert!(Instant::now() < deadline, "never shown down");
            std::thread::yield_now();
        }
        assert_eq!(sup.down(), ["worker-1"]);
        let state = &sup.states()["worker-1"];
        assert_eq!(
            state.last_failure.as_deref(),
            Some("panicked: bad exchange answer")
        );
        assert_eq!(started_rx.recv().unwrap(), 1, "restarted");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sup.down().is_empty() {
            assert!(Instant::now() < deadline, "never shown up again");
            std::thread::yield_now();
        }
        assert_eq!(sup.states()["worker-1"].restarts, 1);
    }

    #[test]
    fn a_thread_that_keeps_dying_makes_the_supervisor_give_up() {
        let (tx, rx) = mpsc::channel::<String>();
        let tx = Mutex::new(tx);
        let sup = Supervisor::new(
            RestartPolicy {
                first_backoff: Duration::from_millis(1),
                ..quick(3)
            },
            move |n| tx.lock().unwrap().send(n.to_owned()).unwrap(),
        );
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let handle = sup.spawn("flaky", move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "flaky");
        handle.join().unwrap();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "three lives, then it gave up"
        );
        assert_eq!(sup.down(), ["flaky"]);
    }
}
