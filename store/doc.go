// Package store will own Duplex's persistence: sessions, durable
// subscriptions, queued and retained messages in one bbolt file (see
// ARCHITECTURE §3.7). It imports nothing of Duplex's own; the broker
// converts its types to the store's records. Until it lands, the router
// keeps queues in memory.
package store
