//! The streaming form of chat and text completions: the events of every choice's job, merged
//! into `data:` chunks as they come, then the usage chunk if asked for, then `data: [DONE]`
//! once every choice has ended. A job error ends the stream (and cancels the other choices).

use super::{choices::merged, completion::Completion, usage};
use crate::{
    jobs::event::JobEvent,
    server::stream::{JobEvents, keep_alive},
};
use axum::response::sse::{Event, Sse};
use futures_util::{Stream, StreamExt, stream};
use rbee_plugin_api::tasks::text_generation::TOOL_CALL;
use serde_json::{Value, json};
use std::convert::Infallible;

/// OpenAI's streaming form of the completion whose choices' jobs send `events`.
pub fn sse(
    completion: Completion,
    events: Vec<JobEvents>,
    include_usage: bool,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let chunks = Chunks::new(completion, events.len(), include_usage);
    let opening = chunks.opening();
    let body = stream::unfold(Some((merged(events), chunks)), |running| async move {
        let (mut events, mut chunks) = running?;
        loop {
            let (index, event) = events.next().await?;
            let (lines, over) = chunks.on(index, event);
            match over {
                true => return Some((lines, None)),
                false if !lines.is_empty() => return Some((lines, Some((events, chunks)))),
                false => continue,
            }
        }
    });
    let lines = stream::iter(opening).chain(body.flat_map(stream::iter));
    Sse::new(lines.map(|data| Ok(Event::default().data(data)))).keep_alive(keep_alive())
}

/// Turns the merged events of a completion's choices into the `data:` lines of its stream.
struct Chunks {
    completion: Completion,
    /// Where each choice's next token starts in its text (text completions' offsets).
    offsets: Vec<usize>,
    /// Each choice's `end` details, once it ended.
    ended: Vec<Option<Value>>,
    include_usage: bool,
}

impl Chunks {
    fn new(completion: Completion, choices: usize, include_usage: bool) -> Self {
        Self {
            completion,
            offsets: vec![0; choices],
            ended: vec![None; choices],
            include_usage,
        }
    }

    /// The lines sent before any event: chat's opening chunk of each choice.
    fn opening(&self) -> Vec<String> {
        (0..self.offsets.len())
            .filter_map(|index| self.completion.opening(index))
            .map(|chunk| chunk.to_string())
            .collect()
    }

    /// The lines event `event` of choice `index` gives, and whether the stream is over.
    fn on(&mut self, index: usize, event: JobEvent) -> (Vec<String>, bool) {
        let completion = &self.completion;
        let chunk = match event {
            JobEvent::Token { text, logprobs, .. } => {
                let entries = logprobs.as_ref().and_then(Value::as_array);
                let entries = entries.map_or(&[][..], Vec::as_slice);
                Some(completion.token(index, &text, entries, &mut self.offsets[index]))
            }
            JobEvent::Custom { name, data } if name == TOOL_CALL => {
                completion.tool_call(index, &data)
            }
            JobEvent::End {
                stop_reason,
                details,
            } => return self.end(index, &stop_reason, details),
            JobEvent::Error { code, message } => {
                let error =
                    json!({"error": {"message": message, "type": "server_error", "code": code}});
                return (vec![error.to_string(), "[DONE]".into()], true);
            }
            _ => None,
        };
        (chunk.into_iter().map(|c| c.to_string()).collect(), false)
    }

    /// Choice `index` ended: its finish chunk, and after the last choice the usage chunk (if
    /// asked for) and `[DONE]`.
    fn end(&mut self, index: usize, stop_reason: &str, details: Value) -> (Vec<String>, bool) {
        let mut lines = vec![self.completion.finish(index, stop_reason).to_string()];
        self.ended[index] = Some(details);
        let over = self.ended.iter().all(Option::is_some);
        if over && self.include_usage {
            let usage = usage(self.ended.iter().flatten());
            lines.push(self.completion.usage(usage).to_string());
        }
        if over {
            lines.push("[DONE]".into());
        }
        (lines, over)
    }
}

#[cfg(test)]
mod tests;
