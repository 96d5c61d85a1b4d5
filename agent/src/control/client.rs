//! The CLI's end of the control socket (blocking: the CLI has no runtime).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::protocol::{Request, Response};

/// Errors talking to a running agent.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no egret agent is running on {config_dir} (nothing answers on {socket}): start one with `egret run --config-dir {config_dir}`")]
    NoAgent { config_dir: String, socket: String },
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("agent sent an answer egret does not understand: {0}")]
    Protocol(#[from] serde_json::Error),
    #[error("agent closed the control connection")]
    Closed,
    #[error("agent: {0}")]
    Agent(String),
}

/// A connection to the agent serving a config folder.
pub struct ControlClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl ControlClient {
    /// Connects to the agent whose state folder is `state_dir`.
    pub fn connect(config_dir: &Path, state_dir: &Path) -> Result<Self, ControlError> {
        let socket: PathBuf = state_dir.join(super::protocol::SOCKET_NAME);
        let stream = UnixStream::connect(&socket).map_err(|_| ControlError::NoAgent {
            config_dir: config_dir.display().to_string(),
            socket: socket.display().to_string(),
        })?;
        Ok(ControlClient {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends one request and waits for its answer; agent errors become `Err`.
    pub fn call(&mut self, request: &Request) -> Result<Response, ControlError> {
        let mut text = serde_json::to_string(request)?;
        text.push('\n');
        self.writer.write_all(text.as_bytes())?;
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(ControlError::Closed);
        }
        match serde_json::from_str(&line)? {
            Response::Error { message } => Err(ControlError::Agent(message)),
            other => Ok(other),
        }
    }
}
