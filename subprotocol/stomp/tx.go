package stomp

import (
	"github.com/go-stomp/stomp/v3/frame"
)

// handleBegin opens a transaction (STOMP 1.2 §BEGIN).
func (c *conn) handleBegin(f *frame.Frame) error {
	tx, ok := f.Header.Contains(frame.Transaction)
	if !ok || tx == "" {
		return protocolErr("missing transaction", "BEGIN needs a transaction header")
	}
	if _, dup := c.txs[tx]; dup {
		return protocolErr("transaction already open", "transaction %q is already open", tx)
	}
	if len(c.txs) >= c.cfg.MaxTx {
		return protocolErr("too many transactions", "at most %d transactions may be open at once", c.cfg.MaxTx)
	}
	if c.txs == nil {
		c.txs = make(map[string][]*frame.Frame)
	}
	c.txs[tx] = nil
	return nil
}

// buffer holds a SEND, ACK or NACK until its transaction commits.
func (c *conn) buffer(tx string, f *frame.Frame) error {
	frames, ok := c.txs[tx]
	if !ok {
		return protocolErr("unknown transaction", "transaction %q is not open", tx)
	}
	if len(frames) >= c.cfg.MaxTxFrames {
		return protocolErr("transaction too large", "transaction %q holds more than %d frames", tx, c.cfg.MaxTxFrames)
	}
	if c.txBytes+len(f.Body) > c.cfg.MaxTxBytes {
		return protocolErr("transaction too large", "open transactions hold more than %d body bytes", c.cfg.MaxTxBytes)
	}
	c.txBytes += len(f.Body)
	f.Header.Del(frame.Transaction)
	f.Header.Del(frame.Receipt) // the receipt was answered when the frame was buffered
	c.txs[tx] = append(frames, f)
	return nil
}

// handleCommit applies a transaction's frames in order (STOMP 1.2 §COMMIT).
func (c *conn) handleCommit(f *frame.Frame) error {
	tx := f.Header.Get(frame.Transaction)
	frames, ok := c.txs[tx]
	if !ok {
		return protocolErr("unknown transaction", "transaction %q is not open", tx)
	}
	c.dropTx(tx)
	for _, bf := range frames {
		var err error
		if bf.Command == frame.SEND {
			err = c.handleSend(bf)
		} else {
			err = c.handleAck(bf)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// handleAbort discards a transaction's frames (STOMP 1.2 §ABORT).
func (c *conn) handleAbort(f *frame.Frame) error {
	tx := f.Header.Get(frame.Transaction)
	if _, ok := c.txs[tx]; !ok {
		return protocolErr("unknown transaction", "transaction %q is not open", tx)
	}
	c.dropTx(tx)
	return nil
}

// dropTx forgets a transaction and its buffered bytes.
func (c *conn) dropTx(tx string) {
	for _, f := range c.txs[tx] {
		c.txBytes -= len(f.Body)
	}
	delete(c.txs, tx)
}
