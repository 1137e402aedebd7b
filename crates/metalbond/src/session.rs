//! The per-connection session state machine and its timers (sans I/O).
//!
//! The machine consumes received messages and the current time and says what to send; the connection driver does
//! the I/O. Time is always passed in, so tests run it with synthetic instants, and the length of one wire "second"
//! is configurable ([`SessionTimers::unit`]) so real-socket tests can use short timers with the same wire values.
//!
//! Client (outgoing): CONNECTING → send HELLO → HELLO_SENT → HELLO received → HELLO_RECEIVED, send KEEPALIVE now
//! and every interval → KEEPALIVE echo received → ESTABLISHED. Server (incoming): CONNECTING → HELLO received →
//! reply HELLO{min interval, isServer} → HELLO_SENT → KEEPALIVE received → ESTABLISHED; every KEEPALIVE is echoed.
//! The hold time is 2.5 × the negotiated interval since the last KEEPALIVE (before the HELLO exchange: 2.5 × our
//! own interval, so that a silent peer cannot hold a session open forever, which upstream allows).

use std::fmt;
use std::time::{Duration, Instant};

use crate::codec::{Message, MessageType};

/// Which side opened the TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Accepted by our listener (we are the server side).
    Incoming,
    /// Dialled by us (we are the client side).
    Outgoing,
}

/// Session states, numbered as upstream's `ConnectionState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnectionState {
    /// 0: dialling, or accepted and waiting for HELLO.
    Connecting,
    /// 1: our HELLO is out.
    HelloSent,
    /// 2: the peer's HELLO arrived.
    HelloReceived,
    /// 3: routes flow.
    Established,
    /// 4: waiting before redialling.
    Retry,
    /// 5: closed for good.
    Closed,
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connecting => "CONNECTING",
            Self::HelloSent => "HELLO_SENT",
            Self::HelloReceived => "HELLO_RECEIVED",
            Self::Established => "ESTABLISHED",
            Self::Retry => "RETRY",
            Self::Closed => "CLOSED",
        })
    }
}

/// Why a session ends. Every variant resets the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No KEEPALIVE within the hold time.
    #[error("Connection timed out")]
    Timeout,
    /// The peer's HELLO announced a keepalive interval of 0.
    #[error("peer announced keepalive interval {0}, must be at least 1")]
    BadKeepaliveInterval(u32),
    /// A message that is not allowed in the current state.
    #[error("unexpected {kind} in state {state}")]
    Unexpected {
        /// The message type received.
        kind: MessageType,
        /// The state it arrived in.
        state: ConnectionState,
    },
}

/// Timer configuration of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimers {
    /// Our keepalive interval in wire units (seconds on the wire); ≥ 1.
    pub keepalive_interval: u32,
    /// The real duration of one wire unit: one second in production, shorter in tests.
    pub unit: Duration,
}

impl SessionTimers {
    /// Timers with `keepalive_interval` wire seconds (0 means upstream's default of 5) and real seconds.
    pub fn new(keepalive_interval: u32) -> Self {
        Self {
            keepalive_interval: if keepalive_interval == 0 {
                5
            } else {
                keepalive_interval
            },
            unit: Duration::from_secs(1),
        }
    }

    /// The same wire interval, with one wire second lasting `unit` (must be non-zero).
    pub fn with_unit(mut self, unit: Duration) -> Self {
        self.unit = unit.max(Duration::from_millis(1));
        self
    }

    fn interval(&self, wire: u32) -> Duration {
        self.unit.saturating_mul(wire)
    }

    fn hold(&self, wire: u32) -> Duration {
        self.unit.saturating_mul(wire).saturating_mul(5) / 2
    }
}

/// What the driver must do after feeding the session a message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Step {
    /// A protocol message to send to the peer (HELLO reply, first KEEPALIVE, KEEPALIVE echo).
    pub reply: Option<Message>,
    /// The session just became ESTABLISHED: replay subscriptions and announcements.
    pub established: bool,
    /// A SUBSCRIBE/UNSUBSCRIBE/UPDATE for the route engine.
    pub deliver: Option<Message>,
}

/// One session's protocol state.
#[derive(Debug, Clone)]
pub struct Session {
    direction: Direction,
    state: ConnectionState,
    timers: SessionTimers,
    negotiated: u32,
    peer_is_server: bool,
    hold_deadline: Instant,
    next_keepalive: Option<Instant>,
}

impl Session {
    /// A fresh session on a just-opened connection at `now`.
    pub fn new(direction: Direction, timers: SessionTimers, now: Instant) -> Self {
        let own = timers.keepalive_interval.max(1);
        Self {
            direction,
            state: ConnectionState::Connecting,
            timers: SessionTimers {
                keepalive_interval: own,
                ..timers
            },
            negotiated: own,
            peer_is_server: false,
            hold_deadline: now + timers.hold(own),
            next_keepalive: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// The negotiated keepalive interval in wire units (our own until the HELLO exchange).
    pub fn keepalive_interval(&self) -> u32 {
        self.negotiated
    }

    /// Whether the peer said it is a server in its HELLO (upstream never records this).
    pub fn peer_is_server(&self) -> bool {
        self.peer_is_server
    }

    /// Opens the session: the client's HELLO, or nothing on the server side.
    pub fn start(&mut self) -> Option<Message> {
        match (self.direction, self.state) {
            (Direction::Outgoing, ConnectionState::Connecting) => {
                self.state = ConnectionState::HelloSent;
                Some(Message::Hello {
                    keepalive_interval: self.timers.keepalive_interval,
                    is_server: false,
                })
            }
            _ => None,
        }
    }

    /// Feeds one received message at `now`.
    pub fn on_message(&mut self, msg: Message, now: Instant) -> Result<Step, SessionError> {
        let unexpected = |state| SessionError::Unexpected {
            kind: msg.message_type(),
            state,
        };
        let mut step = Step::default();
        match (&msg, self.direction, self.state) {
            (
                Message::Hello {
                    keepalive_interval,
                    is_server,
                },
                dir,
                state,
            ) if (dir == Direction::Outgoing && state == ConnectionState::HelloSent)
                || (dir == Direction::Incoming && state == ConnectionState::Connecting) =>
            {
                if *keepalive_interval < 1 {
                    return Err(SessionError::BadKeepaliveInterval(*keepalive_interval));
                }
                self.negotiated = self.timers.keepalive_interval.min(*keepalive_interval);
                self.peer_is_server = *is_server;
                self.hold_deadline = now + self.timers.hold(self.negotiated);
                if dir == Direction::Outgoing {
                    self.state = ConnectionState::HelloReceived;
                    self.next_keepalive = Some(now + self.timers.interval(self.negotiated));
                    step.reply = Some(Message::Keepalive);
                } else {
                    self.state = ConnectionState::HelloSent;
                    step.reply = Some(Message::Hello {
                        keepalive_interval: self.negotiated,
                        is_server: true,
                    });
                }
            }
            (Message::Keepalive, dir, state) => {
                let opening = match dir {
                    Direction::Outgoing => ConnectionState::HelloReceived,
                    Direction::Incoming => ConnectionState::HelloSent,
                };
                if state == opening {
                    self.state = ConnectionState::Established;
                    step.established = true;
                } else if state != ConnectionState::Established {
                    return Err(unexpected(state));
                }
                self.hold_deadline = now + self.timers.hold(self.negotiated);
                if dir == Direction::Incoming {
                    step.reply = Some(Message::Keepalive);
                }
            }
            (
                Message::Subscribe(_) | Message::Unsubscribe(_) | Message::Update(..),
                _,
                ConnectionState::Established,
            ) => {
                step.deliver = Some(msg);
            }
            (_, _, state) => return Err(unexpected(state)),
        }
        Ok(step)
    }

    /// Advances the timers to `now`: the KEEPALIVE to send if one is due, or [`SessionError::Timeout`].
    pub fn poll(&mut self, now: Instant) -> Result<Option<Message>, SessionError> {
        if now >= self.hold_deadline {
            return Err(SessionError::Timeout);
        }
        match self.next_keepalive {
            Some(due) if now >= due => {
                let interval = self.timers.interval(self.negotiated);
                // Skip missed beats rather than sending a burst after a stall.
                let mut next = due + interval;
                while next <= now {
                    next += interval;
                }
                self.next_keepalive = Some(next);
                Ok(Some(Message::Keepalive))
            }
            _ => Ok(None),
        }
    }

    /// When [`poll`](Self::poll) next has something to do.
    pub fn next_deadline(&self) -> Instant {
        self.next_keepalive
            .map_or(self.hold_deadline, |k| k.min(self.hold_deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{NextHop, Route};
    use ironnet_vni::vni;

    const S: Duration = Duration::from_secs(1);

    fn pair(client_ka: u32, server_ka: u32, t0: Instant) -> (Session, Session) {
        let c = Session::new(Direction::Outgoing, SessionTimers::new(client_ka), t0);
        let s = Session::new(Direction::Incoming, SessionTimers::new(server_ka), t0);
        (c, s)
    }

    #[test]
    fn handshake_negotiates_the_smaller_interval() {
        let t0 = Instant::now();
        let (mut c, mut s) = pair(5, 3, t0);
        let hello = c.start().unwrap();
        assert_eq!(
            hello,
            Message::Hello {
                keepalive_interval: 5,
                is_server: false
            }
        );
        assert_eq!(c.state(), ConnectionState::HelloSent);
        let step = s.on_message(hello, t0).unwrap();
        assert_eq!(
            step.reply,
            Some(Message::Hello {
                keepalive_interval: 3,
                is_server: true
            })
        );
        assert_eq!(s.state(), ConnectionState::HelloSent);
        let step = c.on_message(step.reply.unwrap(), t0).unwrap();
        assert!(c.peer_is_server());
        assert_eq!(c.keepalive_interval(), 3);
        assert_eq!(c.state(), ConnectionState::HelloReceived);
        assert_eq!(step.reply, Some(Message::Keepalive));
        let step = s.on_message(Message::Keepalive, t0).unwrap();
        assert!(step.established);
        assert_eq!(step.reply, Some(Message::Keepalive));
        let step = c.on_message(Message::Keepalive, t0).unwrap();
        assert!(step.established);
        assert_eq!(c.state(), ConnectionState::Established);
        assert_eq!(s.state(), ConnectionState::Established);
    }

    #[test]
    fn client_sends_keepalives_every_interval_and_times_out_after_two_and_a_half() {
        let t0 = Instant::now();
        let (mut c, _) = pair(2, 2, t0);
        c.start();
        c.on_message(
            Message::Hello {
                keepalive_interval: 2,
                is_server: true,
            },
            t0,
        )
        .unwrap();
        c.on_message(Message::Keepalive, t0).unwrap();
        assert_eq!(c.next_deadline(), t0 + 2 * S);
        assert_eq!(c.poll(t0 + S), Ok(None));
        assert_eq!(c.poll(t0 + 2 * S), Ok(Some(Message::Keepalive)));
        assert_eq!(c.poll(t0 + 2 * S), Ok(None));
        assert_eq!(c.next_deadline(), t0 + 4 * S);
        // No echo since t0: hold time 5 s.
        assert_eq!(c.poll(t0 + 4 * S), Ok(Some(Message::Keepalive)));
        assert_eq!(c.poll(t0 + 5 * S), Err(SessionError::Timeout));
    }

    #[test]
    fn keepalive_resets_the_hold_timer() {
        let t0 = Instant::now();
        let (_, mut s) = pair(1, 4, t0);
        s.on_message(
            Message::Hello {
                keepalive_interval: 4,
                is_server: false,
            },
            t0,
        )
        .unwrap();
        s.on_message(Message::Keepalive, t0).unwrap();
        for i in 1..10u32 {
            s.on_message(Message::Keepalive, t0 + i * 9 * S).unwrap();
            assert_eq!(s.poll(t0 + i * 9 * S + 9 * S), Ok(None));
        }
        assert_eq!(s.poll(t0 + 9 * 9 * S + 10 * S), Err(SessionError::Timeout));
    }

    #[test]
    fn silent_peer_times_out_before_hello() {
        let t0 = Instant::now();
        let (_, mut s) = pair(1, 2, t0);
        assert_eq!(s.poll(t0 + 4 * S), Ok(None));
        assert_eq!(s.poll(t0 + 5 * S), Err(SessionError::Timeout));
    }

    #[test]
    fn protocol_violations_reset() {
        let t0 = Instant::now();
        let upd = Message::Update(
            crate::codec::Action::Add,
            Route::new(
                vni!(1),
                "10.0.0.1/32".parse().unwrap(),
                NextHop::standard("fc00::1".parse().unwrap()),
            ),
        );
        let (mut c, mut s) = pair(1, 1, t0);
        assert!(matches!(
            s.on_message(Message::Keepalive, t0),
            Err(SessionError::Unexpected { .. })
        ));
        assert!(matches!(
            s.on_message(upd.clone(), t0),
            Err(SessionError::Unexpected { .. })
        ));
        assert!(matches!(
            s.on_message(Message::Subscribe(vni!(1)), t0),
            Err(SessionError::Unexpected { .. })
        ));
        assert_eq!(
            s.on_message(
                Message::Hello {
                    keepalive_interval: 0,
                    is_server: false
                },
                t0
            ),
            Err(SessionError::BadKeepaliveInterval(0))
        );
        c.start();
        assert!(matches!(
            c.on_message(Message::Keepalive, t0),
            Err(SessionError::Unexpected { .. })
        ));
        let (mut c, _) = pair(1, 1, t0);
        // A HELLO before we sent ours, and a second HELLO, are both violations.
        assert!(
            c.on_message(
                Message::Hello {
                    keepalive_interval: 1,
                    is_server: true
                },
                t0
            )
            .is_err()
        );
        c.start();
        c.on_message(
            Message::Hello {
                keepalive_interval: 1,
                is_server: true,
            },
            t0,
        )
        .unwrap();
        assert!(
            c.on_message(
                Message::Hello {
                    keepalive_interval: 1,
                    is_server: true
                },
                t0
            )
            .is_err()
        );
    }

    #[test]
    fn established_sessions_deliver_route_messages() {
        let t0 = Instant::now();
        let (_, mut s) = pair(1, 1, t0);
        s.on_message(
            Message::Hello {
                keepalive_interval: 1,
                is_server: false,
            },
            t0,
        )
        .unwrap();
        s.on_message(Message::Keepalive, t0).unwrap();
        let step = s.on_message(Message::Subscribe(vni!(7)), t0).unwrap();
        assert_eq!(step.deliver, Some(Message::Subscribe(vni!(7))));
        assert_eq!(step.reply, None);
    }

    #[test]
    fn short_units_scale_every_timer() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(10);
        let mut c = Session::new(Direction::Outgoing, SessionTimers::new(2).with_unit(ms), t0);
        c.start();
        c.on_message(
            Message::Hello {
                keepalive_interval: 2,
                is_server: true,
            },
            t0,
        )
        .unwrap();
        assert_eq!(c.next_deadline(), t0 + 2 * ms);
        assert_eq!(c.poll(t0 + 5 * ms), Err(SessionError::Timeout));
    }
}
