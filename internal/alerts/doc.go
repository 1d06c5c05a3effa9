// Package alerts delivers audit events that match configured alerts to
// webhooks, in real time, without losing one across a restart.
//
// The Dispatcher follows the audit log itself (not an in-memory feed): it
// keeps the id of the last event it looked at in the database and, in one
// transaction, enqueues a delivery for every alert an event matches and moves
// that cursor. Events written by other processes (the admin CLI) are seen too.
// Deliveries are POSTed with retries and exponential backoff from that
// durable queue; each is signed with HMAC-SHA256 (see Sign) and each outcome
// is written back to the audit log as alert.delivered, alert.retry or
// alert.failed. Events of type alert.* never fire alerts, so a failing
// webhook cannot feed itself.
//
// Lifecycle: New, Start, Wake after appends (optional: the log is also polled
// every second), Close.
package alerts
