//! A job's event queue: bounded, so a client that reads slowly holds back only its own job, with
//! one place always kept for the terminal event. A producer that finds it full sleeps until the
//! reader has emptied half of it (or it gives up), so a fast producer and its reader hand over
//! in batches rather than waking each other for every event.

use super::event::JobEvent;
use std::{
    sync::{Arc, Condvar, Mutex},
    time::Duration,
};
use tokio::sync::mpsc::{self, Receiver, Sender, error::TryRecvError, error::TrySendError};

/// How many events of one job may wait for its client.
pub const EVENT_QUEUE: usize = 1024;

/// How many events a full queue must lose before a waiting producer is woken.
const RESUME_AT: usize = EVENT_QUEUE / 2;

/// How often a waiting producer looks again whether it should give up.
const GIVE_UP_CHECK: Duration = Duration::from_millis(10);

/// Where a producer waits for the reader to make room.
#[derive(Default)]
struct Room {
    lock: Mutex<()>,
    freed: Condvar,
}

/// The producers' end; clones share the queue.
#[derive(Clone, Debug)]
pub struct EventSender {
    events: Sender<JobEvent>,
    room: Arc<Room>,
}

/// The reader's end.
#[derive(Debug)]
pub struct EventReceiver {
    events: Receiver<JobEvent>,
    room: Arc<Room>,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Room")
    }
}

/// A new, empty queue.
pub fn event_queue() -> (EventSender, EventReceiver) {
    let (events, receiver) = mpsc::channel(EVENT_QUEUE);
    let room = Arc::new(Room::default());
    (
        EventSender {
            events,
            room: room.clone(),
        },
        EventReceiver {
            events: receiver,
            room,
        },
    )
}

impl EventSender {
    /// Queues `event`, waiting while the queue is full. A terminal event always fits (one
    /// place is kept for it); another one is dropped once `give_up()` says so (the job was
    /// stopped). Returns at once if the reader is gone.
    pub fn send(&self, mut event: JobEvent, give_up: impl Fn() -> bool) {
        let terminal = event.is_terminal();
        let has_room = || terminal || self.events.capacity() > 1;
        loop {
            if has_room() {
                match self.events.try_send(event) {
                    Ok(()) | Err(TrySendError::Closed(_)) => return,
                    Err(TrySendError::Full(back)) => event = back,
                }
            }
            let stop = || self.events.is_closed() || (!terminal && give_up());
            if stop() {
                return;
            }
            let mut guard = self.room.lock.lock().unwrap_or_else(|e| e.into_inner());
            while self.events.capacity() < RESUME_AT && !stop() {
                guard = match self.room.freed.wait_timeout(guard, GIVE_UP_CHECK) {
                    Ok((guard, _)) => guard,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
        }
    }
}

impl EventReceiver {
    /// The next event, waiting for one; `None` once every producer is gone.
    pub async fn recv(&mut self) -> Option<JobEvent> {
        let event = self.events.recv().await;
        self.made_room();
        event
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Result<JobEvent, TryRecvError> {
        let event = self.events.try_recv();
        self.made_room();
        event
    }

    /// Wakes waiting producers when the queue has just been emptied down to half.
    fn made_room(&self) {
        if self.events.len() == EVENT_QUEUE - RESUME_AT {
            let _guard = self.room.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.room.freed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::thread;

    fn token(index: u64) -> JobEvent {
        JobEvent::Token {
            index,
            text: "x".into(),
            logprobs: None,
        }
    }

    #[test]
    fn a_full_queue_holds_the_producer_until_half_is_read_and_keeps_room_for_the_end() {
        const WAITING: u64 = u64::MAX - 1;
        const DROPPED: u64 = u64::MAX;
        let (sender, mut receiver) = event_queue();
        let fill = |from: u64| {
            let mut index = from;
            while sender.events.capacity() > 1 {
                sender.send(token(index), || false);
                index += 1;
            }
        };
        fill(0);
        let producer = {
            let sender = sender.clone();
            thread::spawn(move || sender.send(token(WAITING), || false))
        };
        let mut read = Vec::new();
        let to_resume = RESUME_AT - 1;
        for wanted in [0, to_resume - 1] {
            while read.len() < wanted {
                read.push(receiver.try_recv().unwrap());
            }
            thread::sleep(Duration::from_millis(50));
            assert!(
                !producer.is_finished(),
                "woken after {wanted} of a full queue were read"
            );
        }
        read.push(receiver.try_recv().unwrap());
        producer.join().unwrap();
        fill(EVENT_QUEUE as u64);
        sender.send(token(DROPPED), || true);
        let end = JobEvent::End {
            stop_reason: "cancelled".into(),
            details: json!({}),
        };
        sender.send(end.clone(), || true);
        while let Ok(event) = receiver.try_recv() {
            read.push(event);
        }
        assert!(read.contains(&token(WAITING)));
        assert!(
            !read.contains(&token(DROPPED)),
            "a stopped job's event is dropped when full"
        );
        assert_eq!(read.last(), Some(&end), "the end always fits");
    }
}
