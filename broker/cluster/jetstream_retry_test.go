package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
)

// TestRetryStart: try runs until it succeeds; a stopRetry ends the retries
// at once with its error; an ended context ends them with its error.
func TestRetryStart(t *testing.T) {
	n := &Node{cfg: Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	tries := 0
	if err := n.retryStart(context.Background(), "test", func() error {
		if tries++; tries < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || tries != 3 {
		t.Fatalf("retryStart = %v after %d tries, want nil after 3", err, tries)
	}
	cause := errors.New("no JetStream")
	tries = 0
	if err := n.retryStart(context.Background(), "test", func() error {
		tries++
		return stopRetry{cause}
	}); err != cause || tries != 1 {
		t.Fatalf("retryStart = %v after %d tries, want the cause after 1", err, tries)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tries = 0
	if err := n.retryStart(ctx, "test", func() error {
		tries++
		cancel()
		return errors.New("not yet")
	}); !errors.Is(err, context.Canceled) || tries != 1 {
		t.Fatalf("retryStart = %v after %d tries, want context.Canceled after 1", err, tries)
	}
}
