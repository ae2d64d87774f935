//! Named network namespaces (`ip netns`, bind-mounted under /run/netns) and running code
//! inside one: a dedicated thread calls `setns`, so only that thread (and threads and sockets
//! it creates) live in the namespace; the rest of the process stays where it was.
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::thread::JoinHandle;

/// Where iproute2 keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// A named network namespace (not owned: creating and deleting it is [`super::NetSetup`]'s job).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Refers to the namespace called `name`.
    pub fn new(name: impl Into<String>) -> NetNs {
        NetNs { name: name.into() }
    }

    /// Its name, as `ip netns` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind mount that keeps it alive.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.name)
    }

    /// True while `ip netns` lists it.
    pub fn exists(&self) -> bool {
        self.path().exists()
    }

    /// Opens the namespace (for `setns`, or to hand to a child process).
    pub fn open(&self) -> std::io::Result<File> {
        File::open(self.path())
    }

    /// Moves the calling thread into the namespace. Sockets it opens afterwards, and threads
    /// it spawns, belong to the namespace.
    pub fn enter(&self) -> std::io::Result<()> {
        enter_fd(&self.open()?)
    }

    /// Runs `f` on a new thread inside the namespace; the thread is named `name`.
    pub fn spawn<F, T>(&self, name: &str, f: F) -> std::io::Result<JoinHandle<std::io::Result<T>>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let ns = self.open()?;
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                enter_fd(&ns)?;
                Ok(f())
            })
    }

    /// Runs `f` inside the namespace on a dedicated thread and waits for its result.
    pub fn run<F, T>(&self, f: F) -> std::io::Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn(&format!("netns-{}", self.name), f)?
            .join()
            .map_err(|_| std::io::Error::other("thread in the network namespace panicked"))?
    }
}

/// `setns(fd, CLONE_NEWNET)` for the calling thread.
pub fn enter_fd(ns: &File) -> std::io::Result<()> {
    // SAFETY: `ns` is an open namespace file descriptor for the duration of the call; setns
    // only changes the calling thread's network namespace.
    let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
