// Package subprotocol is the seam between the gateway and the wire
// protocols: Transport (what a protocol needs from a connection: messages
// in, messages out, deadlines, close) and Protocol (what the gateway needs
// from a protocol), with the Registry that picks a protocol from a client's
// offered WebSocket subprotocols in the server's order of preference.
//
// It also holds the pieces both protocols share:
//
//   - Stream reads a transport's messages as one byte stream, since frames
//     may span or share WebSocket messages; BinaryOnly refuses text
//     messages before their bytes reach a decoder (MQTT). It counts the
//     bytes it hands on, so a protocol counts each frame's wire size into
//     broker.Session.AddBytesIn with one call per frame (ConsumedBy).
//   - Writer schedules a connection's writes: at most one writer at a time
//     (gorilla's rule), a write goroutine started on demand and gone after
//     a second idle, and inline writes by whoever produced a reply when
//     nobody writes, so idle connections and request/response traffic hold
//     no write goroutine.
//   - The connection skeleton (conn.go): EndRead ends a read loop whose
//     reader failed without a protocol error, Writer.Reply queues an
//     answer and writes it inline when nobody writes, WriteRun keeps a
//     write run's batch and slices between passes and ends a pass through
//     the protocol's WriteEnd (WriteFailed, Final, StopWriting).
//   - Batch coalesces queued frames into one WebSocket message, and counts
//     the bytes written (Session.AddBytesOut once per write pass).
//   - Counters and Stats count each protocol's refusals and drops;
//     LogLimiter lets one log line per source address per interval
//     through; PublishLimiter paces a connection's publishes
//     (golang.org/x/time/rate) by pausing its read loop.
//   - Pipeline runs publishes that wait on a store commit off the read
//     loop, in order and in batches (one commit for what queued up during
//     the last), on a goroutine started on demand.
//
// The protocols live in the stomp and mqtt subpackages; this package never
// imports them.
package subprotocol
