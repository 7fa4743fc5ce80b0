//! What the bootstrap reads from the process, as a value: its variables,
//! its working directory and the directory of its executable. The loader is
//! a function of this value (and of the files it names), so tests hand it
//! one each instead of changing the process environment under each other.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The process's variables and directories, as isp-kit's bootstrap reads
/// them (`os.Environ`, the working directory, `os.Executable`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    current_dir: PathBuf,
    executable_dir: PathBuf,
}

impl fmt::Debug for Environment {
    /// Shows the variables' names only: values may be secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("current_dir", &self.current_dir)
            .field("executable_dir", &self.executable_dir)
            .finish()
    }
}

impl Environment {
    /// No variables; relative paths (`./conf/…`) resolve in `current_dir`,
    /// files "beside the binary" are looked for in `executable_dir`.
    pub fn new(current_dir: impl Into<PathBuf>, executable_dir: impl Into<PathBuf>) -> Self {
        Self {
            vars: BTreeMap::new(),
            current_dir: current_dir.into(),
            executable_dir: executable_dir.into(),
        }
    }

    /// This process's: every variable whose name and value are Unicode (a
    /// config key or value cannot be anything else), the working directory
    /// and the executable's directory.
    pub fn from_process() -> io::Result<Self> {
        let executable = std::env::current_exe()?;
        let executable_dir = executable.parent().map(Path::to_owned).unwrap_or_default();
        let mut env = Self::new(std::env::current_dir()?, executable_dir);
        for (name, value) in std::env::vars_os() {
            if let (Ok(name), Ok(value)) = (name.into_string(), value.into_string()) {
                env.vars.insert(name, value);
            }
        }
        Ok(env)
    }

    /// The same, with the variable `name` set to `value`.
    #[must_use]
    pub fn var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// The same, without the variable `name`.
    #[must_use]
    pub fn without_var(mut self, name: &str) -> Self {
        self.vars.remove(name);
        self
    }

    /// The value of the variable `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Every variable, by name.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Where relative paths resolve.
    pub fn current_dir(&self) -> &Path {
        &self.current_dir
    }

    /// Where the files "beside the binary" are.
    pub fn executable_dir(&self) -> &Path {
        &self.executable_dir
    }

    /// `path` resolved in the working directory.
    pub(crate) fn resolve(&self, path: &str) -> PathBuf {
        self.current_dir.join(path)
    }

    /// Whether `APP_MODE` is `dev` (any case).
    pub fn is_dev(&self) -> bool {
        self.get("APP_MODE")
            .is_some_and(|mode| mode.eq_ignore_ascii_case("dev"))
    }

    /// Whether `CLUSTER_MODE` is `offline` (any case).
    pub fn is_offline(&self) -> bool {
        self.get("CLUSTER_MODE")
            .is_some_and(|mode| mode.eq_ignore_ascii_case("offline"))
    }
}
