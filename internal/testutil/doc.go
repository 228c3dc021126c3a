// Package testutil holds the helpers the tests of every Duplex package
// share: polling a condition until a deadline instead of sleeping, and
// running the real broker binary as a child process.
//
// Polling (poll.go): Eventually and EventuallyErr fail the test when a
// condition does not hold within a timeout, EventuallyErr with the
// condition's last error; Poll is the same without a test, returning that
// error, and a condition returning ErrStop ends it early. Polls back off
// from 1 ms to 20 ms between tries.
//
// The broker binary (proc.go): BuildBinary builds ./cmd/duplex once per
// test binary and per build flags (with -race when the test binary itself
// is built with -race, unless NoRace is given); Start runs it, waits for its
// "duplex [NAME ]listening on ADDR" startup lines and parses them into
// addresses by listener name ("" for the plain listener, "mqtt-tcp",
// "admin", ...); a Proc captures stdout and stderr, and is stopped with
// Stop (SIGTERM, then wait) or Kill (SIGKILL). Start registers a cleanup
// that stops the process and logs its stderr when the test failed; Launch
// is the same without a test, for harnesses that restart a broker or retry
// a start themselves. Config.NoWait (or Spawn) starts a run that is not
// expected to listen, such as a refused configuration or a subcommand.
//
// Buffer is a bytes.Buffer safe for concurrent use, for logs written by
// one goroutine and read by the test.
//
// FreeAddr (freeaddr.go) picks a loopback port for a child process to
// bind, below the kernel's ephemeral range and never the same twice.
//
// MQTTPub (mqttpub.go) is the durability harnesses' MQTT 5 publisher
// (test/crash, test/cluster's chaos test): clean start, a new connection
// after any failure, success only for an acknowledgement with a success
// reason code.
//
// Packages that build the binary call RemoveBinaries from TestMain after
// m.Run, so the built binaries do not outlive the test binary.
package testutil
