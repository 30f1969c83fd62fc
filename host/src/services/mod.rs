//! What runs beside the HTTP API: heartbeats to a hive, Prometheus metrics, the services the
//! host offers plugins, and the compute device.

pub mod device;
pub mod heartbeat;
pub mod host_services;
pub mod metrics;
