//! What the host and its plugin process say to each other over the child's stdin and stdout.
//!
//! Both ends are the same `rbee-host` binary, so the messages need no versioning. A frame is
//! two little-endian `u32` lengths, a JSON header (a [`ToChild`] or [`FromChild`]) and raw
//! bytes: the uploads of a job, an artifact's file or an embedding's floats, which would
//! triple in size as JSON.

use abi_stable::std_types::RString;
use rbee_plugin_api::{Job, JobEnd, LoadRequest, PluginError, WorkerStatus};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::io::{self, Read, Write};

/// The largest header or payload a frame may carry: larger lengths mean a broken stream.
const MAX_PART: usize = 1 << 30;

/// A message from the host to its plugin process.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild {
    /// Load the model; answered by [`FromChild::Loaded`].
    Load {
        /// The plugin's load request.
        request: LoadWire,
        /// The host's cache directory.
        cache_dir: String,
    },
    /// Check a job; answered by [`FromChild::Checked`]. The payload holds its inputs.
    Validate {
        /// The call's number.
        call: u64,
        /// The job.
        job: JobWire,
    },
    /// Run a job; answered by [`FromChild::Event`]s and one [`FromChild::Ended`].
    Execute {
        /// The call's number.
        call: u64,
        /// The job.
        job: JobWire,
    },
    /// The host's sink answered stop for a running job, for this [`rbee_plugin_api::StopReason`].
    Stop {
        /// The call's number.
        call: u64,
        /// The reason's number.
        reason: u8,
    },
    /// The host has passed on this many events of a call: the plugin may send as many more.
    Ack {
        /// The call's number.
        call: u64,
        /// How many.
        events: u32,
    },
    /// Report the worker's status; answered by [`FromChild::Status`].
    Status {
        /// The call's number.
        call: u64,
    },
}

/// A message from the plugin process to the host.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromChild {
    /// The load's outcome: how many jobs the worker runs at once, or why it failed.
    Loaded(Result<u32, ErrorWire>),
    /// A validation's outcome.
    Checked {
        /// The call's number.
        call: u64,
        /// Its outcome.
        outcome: Result<(), ErrorWire>,
    },
    /// An event of a running job; binary data is in the payload.
    Event {
        /// The call's number.
        call: u64,
        /// The event.
        event: EventWire,
    },
    /// How a job ended.
    Ended {
        /// The call's number.
        call: u64,
        /// Its end, or the plugin's error.
        outcome: Result<EndWire, ErrorWire>,
    },
    /// The worker's status.
    Status {
        /// The call's number.
        call: u64,
        /// The status.
        status: StatusWire,
    },
    /// A log line of the plugin's.
    Log {
        /// The level, as [`rbee_plugin_api::LogLevel`] numbers it.
        level: u8,
        /// Where it came from.
        target: String,
        /// The line.
        message: String,
    },
    /// Load progress.
    Progress {
        /// 0 to 1.
        fraction: f32,
        /// What is happening.
        message: String,
    },
}

/// A sink call. Binary parts travel in the frame's payload.
#[derive(Debug, Serialize, Deserialize)]
pub enum EventWire {
    /// `started`.
    Started(String),
    /// `text`: index and text.
    Text(u64, String),
    /// `progress`: step, total and, if there is a preview, its media type and metadata.
    Progress(u64, u64, Option<(String, String)>),
    /// `artifact`: media type and metadata; the file is the payload.
    Artifact(String, String),
    /// `embedding`: its index; the floats are the payload, little-endian.
    Embedding(u64),
    /// `metrics`: a JSON object.
    Metrics(String),
    /// `custom`: name and JSON object.
    Custom(String, String),
}

/// A [`LoadRequest`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoadWire {
    model: String,
    device_kind: String,
    device_ordinal: u32,
    threads: u32,
    parallel: u32,
    options_json: String,
    host_capabilities: Vec<String>,
}

impl From<&LoadRequest> for LoadWire {
    fn from(request: &LoadRequest) -> Self {
        Self {
            model: request.model.to_string(),
            device_kind: request.device.kind.to_string(),
            device_ordinal: request.device.ordinal,
            threads: request.threads,
            parallel: request.parallel,
            options_json: request.options_json.to_string(),
            host_capabilities: request
                .host_capabilities
                .iter()
                .map(|c| c.to_string())
                .collect(),
        }
    }
}

impl From<LoadWire> for LoadRequest {
    fn from(wire: LoadWire) -> Self {
        let mut request = LoadRequest::cpu(&wire.model);
        request.device.kind = wire.device_kind.into();
        request.device.ordinal = wire.device_ordinal;
        request.threads = wire.threads;
        request.parallel = wire.parallel;
        request.options_json = wire.options_json.into();
        request.host_capabilities = wire.host_capabilities.into_iter().map(Into::into).collect();
        request
    }
}

/// A [`Job`] on the wire; its inputs' bytes are the payload, in order.
#[derive(Debug, Serialize, Deserialize)]
pub struct JobWire {
    id: String,
    task: String,
    params_json: String,
    inputs: Vec<(String, usize)>,
    deadline_unix_ms: Option<u64>,
}

impl JobWire {
    /// The job's header and its inputs' bytes.
    pub fn split(job: &Job) -> (Self, Vec<u8>) {
        let payload = job
            .inputs
            .iter()
            .flat_map(|i| i.data.iter().copied())
            .collect();
        let wire = Self {
            id: job.id.to_string(),
            task: job.task.to_string(),
            params_json: job.params_json.to_string(),
            inputs: job
                .inputs
                .iter()
                .map(|i| (i.name.to_string(), i.data.len()))
                .collect(),
            deadline_unix_ms: job.deadline_unix_ms.into_option(),
        };
        (wire, payload)
    }

    /// The job again, its inputs cut from `payload`.
    pub fn join(self, payload: &[u8]) -> io::Result<Job> {
        let mut job = Job::new(&self.id, &self.task, &self.params_json);
        job.deadline_unix_ms = self.deadline_unix_ms.into();
        let mut at = 0;
        for (name, len) in self.inputs {
            let data = payload
                .get(at..at + len)
                .ok_or_else(|| broken("a job's inputs are longer than its payload"))?;
            job = job.with_input(&name, data);
            at += len;
        }
        Ok(job)
    }
}

/// A [`JobEnd`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub struct EndWire {
    stop_reason: String,
    details_json: String,
}

impl From<JobEnd> for EndWire {
    fn from(end: JobEnd) -> Self {
        Self {
            stop_reason: end.stop_reason.into_string(),
            details_json: end.details_json.into_string(),
        }
    }
}

impl From<EndWire> for JobEnd {
    fn from(wire: EndWire) -> Self {
        JobEnd::new(&wire.stop_reason).with_details(wire.details_json)
    }
}

/// A [`PluginError`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorWire {
    code: String,
    message: String,
    field: Option<String>,
}

impl From<PluginError> for ErrorWire {
    fn from(error: PluginError) -> Self {
        Self {
            code: error.code.into_string(),
            message: error.message.into_string(),
            field: error.field.into_option().map(RString::into_string),
        }
    }
}

impl From<ErrorWire> for PluginError {
    fn from(wire: ErrorWire) -> Self {
        let mut error = PluginError::new(&wire.code, wire.message);
        error.field = wire.field.map(RString::from).into();
        error
    }
}

/// A [`WorkerStatus`] on the wire.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct StatusWire {
    model: String,
    memory_bytes: u64,
    cache_usage_ratio: f32,
}

impl From<WorkerStatus> for StatusWire {
    fn from(status: WorkerStatus) -> Self {
        Self {
            model: status.model.into_string(),
            memory_bytes: status.memory_bytes,
            cache_usage_ratio: status.cache_usage_ratio,
        }
    }
}

impl From<StatusWire> for WorkerStatus {
    fn from(wire: StatusWire) -> Self {
        WorkerStatus {
            model: wire.model.into(),
            memory_bytes: wire.memory_bytes,
            cache_usage_ratio: wire.cache_usage_ratio,
        }
    }
}

/// Writes one frame and flushes it.
pub fn write_frame(
    out: &mut impl Write,
    header: &impl Serialize,
    payload: &[u8],
) -> io::Result<()> {
    let header = serde_json::to_vec(header)?;
    let lengths = [header.len(), payload.len()].map(|len| {
        u32::try_from(len)
            .map(u32::to_le_bytes)
            .map_err(|_| broken("a frame part is larger than 4 GiB"))
    });
    let [header_len, payload_len] = lengths;
    out.write_all(&header_len?)?;
    out.write_all(&payload_len?)?;
    out.write_all(&header)?;
    out.write_all(payload)?;
    out.flush()
}

/// Reads one frame: its header and payload; `None` at the end of the stream.
pub fn read_frame<T: DeserializeOwned>(input: &mut impl Read) -> io::Result<Option<(T, Vec<u8>)>> {
    let mut lengths = [0u8; 8];
    match input.read_exact(&mut lengths) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut part = |bytes: &[u8]| -> io::Result<Vec<u8>> {
        let len = u32::from_le_bytes(bytes.try_into().unwrap_or_default()) as usize;
        if len > MAX_PART {
            return Err(broken("a frame is larger than 1 GiB"));
        }
        let mut part = vec![0; len];
        input.read_exact(&mut part)?;
        Ok(part)
    };
    let header = part(&lengths[..4])?;
    let payload = part(&lengths[4..])?;
    let header = serde_json::from_slice(&header)?;
    Ok(Some((header, payload)))
}

fn broken(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Floats as little-endian bytes, and back.
pub fn floats_to_bytes(floats: &[f32]) -> Vec<u8> {
    floats.iter().flat_map(|f| f.to_le_bytes()).collect()
}

/// The floats `floats_to_bytes` wrote.
pub fn bytes_to_floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi_stable::std_types::ROption;

    #[test]
    fn a_job_with_inputs_survives_the_wire() {
        let mut job = Job::new("j1", "transcription", r#"{"language":"en"}"#)
            .with_input("audio", vec![1u8, 2, 3])
            .with_input("image", vec![9u8; 10]);
        job.deadline_unix_ms = ROption::RSome(42);
        let (wire, payload) = JobWire::split(&job);
        let mut buffer = Vec::new();
        write_frame(
            &mut buffer,
            &ToChild::Execute { call: 7, job: wire },
            &payload,
        )
        .unwrap();
        let (message, payload): (ToChild, Vec<u8>) =
            read_frame(&mut buffer.as_slice()).unwrap().unwrap();
        let ToChild::Execute { call, job: wire } = message else {
            panic!("another message came back: {message:?}");
        };
        assert_eq!(call, 7);
        assert_eq!(wire.join(&payload).unwrap(), job);
    }

    #[test]
    fn the_end_of_the_stream_is_none_and_a_cut_frame_an_error() {
        let mut buffer = Vec::new();
        write_frame(&mut buffer, &ToChild::Status { call: 1 }, b"").unwrap();
        assert!(read_frame::<ToChild>(&mut &buffer[..0]).unwrap().is_none());
        assert!(read_frame::<ToChild>(&mut &buffer[..buffer.len() - 1]).is_err());
    }

    #[test]
    fn floats_round_trip() {
        let floats = [0.5f32, -1.25, f32::MAX];
        assert_eq!(bytes_to_floats(&floats_to_bytes(&floats)), floats);
    }
}
