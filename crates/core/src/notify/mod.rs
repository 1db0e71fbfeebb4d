//! Notifications, as data: what a `CrewSink` is told about its namespace's executions ([`events`]), how it is
//! encoded as a CloudEvent ([`cloudevent`]), which executions and types a sink wants ([`selector`]) and the order,
//! retries and delivery position of one sink's deliveries ([`outbox`]). The shell sends, this decides.

pub mod cloudevent;
pub mod events;
pub mod outbox;
pub mod selector;
