//go:build linux

package web

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/duplexmq/duplex/internal/testutil"
)

// rawPair returns a rawTCPConn and the plain TCP connection at its other
// end, both closed when the test ends.
func rawPair(t *testing.T) (*rawTCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	// Small buffers, so that the socket fills after a few writes.
	_ = c.(*net.TCPConn).SetWriteBuffer(4096)
	_ = peer.(*net.TCPConn).SetReadBuffer(4096)
	r, ok := wrapRaw(c).(*rawTCPConn)
	if !ok {
		t.Fatal("a plain TCP connection was not wrapped")
	}
	t.Cleanup(func() { _ = r.Close(); _ = peer.Close() })
	return r, peer.(*net.TCPConn)
}

// TestRawConnReadWrite: bytes both ways, EOF at the peer's close, and a
// read deadline that passes.
func TestRawConnReadWrite(t *testing.T) {
	r, peer := rawPair(t)
	if _, err := r.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "hello" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	_ = r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := r.Read(got); !errors.Is(err, net.ErrClosed) && !isTimeout(err) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	_ = r.SetReadDeadline(time.Time{})
	if _, err := peer.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, got); err != nil || string(got) != "world" {
		t.Fatalf("read %q, %v", got, err)
	}
	_ = peer.Close()
	if n, err := r.Read(got); n != 0 || err != io.EOF {
		t.Fatalf("read after the peer closed: %d, %v; want 0, EOF", n, err)
	}
}

// TestRawConnFullSocketNeverWaits: small writes to a peer that reads
// nothing all return (what the socket cannot take becomes the tail, and
// canWrite says so); once the peer reads, every byte arrives, in order.
func TestRawConnFullSocketNeverWaits(t *testing.T) {
	r, peer := rawPair(t)
	msg := make([]byte, 1024)
	var sent uint32
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Like a publisher writing inline: only while canWrite.
		for i := 0; i < 10000 && r.canWrite(); i++ {
			sent++
			binary.BigEndian.PutUint32(msg, sent)
			if _, err := r.Write(msg); err != nil {
				t.Errorf("write %d: %v", sent, err)
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a small write to a full socket waited for the reader")
	}
	if r.canWrite() {
		t.Fatalf("10000 KiB written to a peer that reads nothing, and no tail pending")
	}
	// A later write waits for the tail and keeps the order.
	last := make(chan error, 1)
	go func() {
		b := make([]byte, 1024)
		binary.BigEndian.PutUint32(b, sent+1)
		_, err := r.Write(b)
		last <- err
	}()
	want := uint32(1)
	buf := make([]byte, 1024)
	for want <= sent+1 {
		if _, err := io.ReadFull(peer, buf); err != nil {
			t.Fatalf("peer read message %d: %v", want, err)
		}
		if got := binary.BigEndian.Uint32(buf); got != want {
			t.Fatalf("peer got message %d, want %d", got, want)
		}
		want++
	}
	if err := <-last; err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the tail written", r.canWrite)
}

// TestRawConnTailFailureCloses: a tail that cannot be written within the
// write deadline closes the connection, and later writes fail.
func TestRawConnTailFailureCloses(t *testing.T) {
	r, peer := rawPair(t)
	// Fill the socket: a large write (never a tail) until its deadline.
	_ = r.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := r.Write(make([]byte, 8<<20)); !isTimeout(err) {
		t.Fatalf("8 MiB to a peer that reads nothing: %v, want a timeout", err)
	}
	_ = r.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := r.Write([]byte("small")); err != nil {
		t.Fatalf("a small write to a full socket: %v, want it taken as the tail", err)
	}
	testutil.Eventually(t, 20*time.Second, "the tail to fail", func() bool {
		r.wmu.Lock()
		defer r.wmu.Unlock()
		return r.failed != nil
	})
	if _, err := r.Write([]byte("more")); err == nil {
		t.Fatal("a write after the tail failed succeeded")
	}
	_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, peer); isTimeout(err) {
		t.Fatal("the connection stayed open after its tail failed")
	}
}

// TestRawConnDrainTailBeforeClose: a graceful close (tcpTransport.Close)
// writes a pending tail before the FIN: a RECEIPT the full socket could not
// take yet still reaches the client.
func TestRawConnDrainTailBeforeClose(t *testing.T) {
	r, peer := rawPair(t)
	_ = r.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	n, err := r.Write(make([]byte, 8<<20)) // fills the socket, then times out
	if !isTimeout(err) {
		t.Fatalf("8 MiB to a peer that reads nothing: %v, want a timeout", err)
	}
	_ = r.SetWriteDeadline(time.Time{})
	if _, err := r.Write([]byte("RECEIPT")); err != nil {
		t.Fatal(err)
	}
	if r.canWrite() {
		t.Fatal("a write to a full socket left no tail")
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(peer)
		got <- b
	}()
	r.drainTail(10 * time.Second)
	_ = r.Close()
	select {
	case b := <-got:
		if len(b) != n+len("RECEIPT") || string(b[n:]) != "RECEIPT" {
			t.Fatalf("the peer read %d bytes ending %q; want %d ending \"RECEIPT\"", len(b), b[max(0, len(b)-7):], n+7)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the peer never saw the end of the stream")
	}
}
