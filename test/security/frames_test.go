package security

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3/frame"
)

// Frame limits in TestOversizeFrames.
const (
	frameMax       = 64 << 10 // [limits] max_frame_size: the largest STOMP body after login
	frameMaxBefore = 2048     // [limits] max_frame_size_before_login (not the 4096 default, to see the key work)
	// packetMax is the largest MQTT packet (and WebSocket message) after
	// login: max_frame_size plus 64 KiB, as duplex.example.toml documents.
	packetMax = frameMax + 64<<10
)

// TestOversizeFrames: before login a frame over max_frame_size_before_login
// (2 KiB here; the default is RabbitMQ's 4 KiB) is refused — STOMP ERROR
// "frame too large", MQTT v5 CONNACK 0x95, MQTT 3.1.1 close — while one
// under it logs in; after
// login that limit no longer applies (an 8 KiB message passes) and a frame
// over max_frame_size is refused — STOMP ERROR, MQTT v5 DISCONNECT 0x95,
// MQTT 3.1.1 close. Over WebSocket and the TCP listeners; neighbours on
// both protocols exchange messages throughout.
func TestOversizeFrames(t *testing.T) {
	t.Parallel()
	p := startBroker(t, fmt.Sprintf(`
[limits]
max_frame_size = %d
max_frame_size_before_login = %d
`, frameMax, frameMaxBefore))
	ns := []*neighbour{stompNeighbour(t, p, "ws", "", "", ""), v5Neighbour(t, p, "tcp", "", "", "")}
	var errInner error
	errOuter := ns[0].during(func() {
		errInner = ns[1].during(func() {
			for _, tr := range transports {
				t.Run("stomp/before-login/"+tr, func(t *testing.T) { stompBeforeLogin(t, p, tr) })
				t.Run("stomp/after-login/"+tr, func(t *testing.T) { stompAfterLogin(t, p, tr) })
				t.Run("mqtt5/before-login/"+tr, func(t *testing.T) { mqttBeforeLogin(t, p, tr, 5) })
				t.Run("mqtt311/before-login/"+tr, func(t *testing.T) { mqttBeforeLogin(t, p, tr, 4) })
				t.Run("mqtt5/after-login/"+tr, func(t *testing.T) { mqttAfterLogin(t, p, tr, 5) })
				t.Run("mqtt311/after-login/"+tr, func(t *testing.T) { mqttAfterLogin(t, p, tr, 4) })
			}
		})
	})
	for _, e := range []error{errOuter, errInner} {
		if e != nil {
			t.Error(e)
		}
	}
	for _, n := range ns {
		n.report(t)
	}
}

// stompBeforeLogin: a CONNECT padded to 600 bytes under the before-login
// limit logs in; one padded to 1000 bytes over it gets ERROR "frame too
// large" and the connection closes.
func stompBeforeLogin(t *testing.T, p *proc, tr string) {
	for _, c := range []struct {
		pad int
		ok  bool
	}{{frameMaxBefore - 600, true}, {frameMaxBefore + 1000, false}} {
		nc, err := openSTOMP(p, tr, "")
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		r := newRawSTOMP(nc)
		if err := r.send("CONNECT", nil, "accept-version", "1.2", "host", "localhost", "heart-beat", "0,0",
			"x-pad", strings.Repeat("p", c.pad)); err != nil {
			t.Fatalf("write CONNECT: %v", err)
		}
		fs, err := r.untilClosedOr(c.ok)
		if err != nil {
			t.Fatalf("CONNECT with a %d-byte header: %v (frames %d)", c.pad, err, len(fs))
		}
		if c.ok {
			if len(fs) != 1 || fs[0].Command != "CONNECTED" {
				t.Fatalf("CONNECT of %d bytes (under %d): got %s, want CONNECTED", c.pad, frameMaxBefore, framesString(fs))
			}
			continue
		}
		if len(fs) != 1 || fs[0].Command != "ERROR" || !strings.Contains(fs[0].Header.Get("message"), "frame too large") {
			t.Fatalf("CONNECT of %d bytes (over %d before login): got %s, want ERROR message:frame too large, then close", c.pad, frameMaxBefore, framesString(fs))
		}
		t.Logf("%s: oversize CONNECT: %s", tr, framesString(fs))
	}
}

// stompAfterLogin: after CONNECTED an 8 KiB SEND is received back; a SEND
// over max_frame_size gets ERROR "frame too large" and the close.
func stompAfterLogin(t *testing.T, p *proc, tr string) {
	nc, err := openSTOMP(p, tr, "")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := newRawSTOMP(nc)
	if err := r.send("CONNECT", nil, "accept-version", "1.2", "host", "localhost", "heart-beat", "0,0"); err != nil {
		t.Fatal(err)
	}
	if f, err := r.next(waitShort); err != nil || f.Command != "CONNECTED" {
		t.Fatalf("CONNECT: %v %v", f, err)
	}
	dest := "/topic/" + uniq("frames/stomp-")
	big := bytes.Repeat([]byte("b"), 8<<10)
	if err := r.send("SUBSCRIBE", nil, "id", "0", "destination", dest); err != nil {
		t.Fatal(err)
	}
	if err := r.send("SEND", big, "destination", dest, "receipt", "r1", "content-length", fmt.Sprint(len(big))); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for range 2 {
		f, err := r.next(waitShort)
		if err != nil {
			t.Fatalf("after an %d-byte SEND: %v (got %v)", len(big), err, got)
		}
		switch {
		case f.Command == "RECEIPT":
			got["RECEIPT"] = true
		case f.Command == "MESSAGE" && bytes.Equal(f.Body, big):
			got["MESSAGE"] = true
		default:
			t.Fatalf("after an %d-byte SEND (over the before-login limit, under max_frame_size): %s", len(big), frameString(f))
		}
	}
	over := bytes.Repeat([]byte("o"), frameMax+1024)
	if err := r.send("SEND", over, "destination", dest, "content-length", fmt.Sprint(len(over))); err != nil {
		t.Logf("write of the oversize SEND: %v", err)
	}
	fs, err := r.untilClosed(waitShort)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Command != "ERROR" || !strings.Contains(fs[0].Header.Get("message"), "frame too large") {
		t.Fatalf("SEND of %d bytes (max_frame_size %d): got %s, want ERROR message:frame too large, then close", len(over), frameMax, framesString(fs))
	}
}

// mqttBeforeLogin: a CONNECT 600 bytes under the before-login limit gets
// CONNACK 0; one 1000 bytes over it gets v5 CONNACK 0x95 (Packet too large) or, on 3.1.1, the
// close and nothing else. The padding is a user property (v5) or the will
// payload (3.1.1).
func mqttBeforeLogin(t *testing.T, p *proc, tr string, level byte) {
	for _, c := range []struct {
		pad int
		ok  bool
	}{{frameMaxBefore - 600, true}, {frameMaxBefore + 1000, false}} {
		nc, err := openMQTT(p, tr, "")
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		r := newRawMQTT(nc)
		s := connectSpec{level: level, id: uniq("frames-"), clean: true}
		if level == 5 {
			s.props = userProperty("pad", strings.Repeat("p", c.pad))
		} else {
			s.willTopic, s.willPayload = "frames/will", bytes.Repeat([]byte("w"), c.pad)
		}
		if err := r.write(connectPacket(s)); err != nil {
			t.Logf("write CONNECT: %v", err)
		}
		if c.ok {
			pk, err := r.read(waitShort)
			if err != nil {
				t.Fatalf("CONNECT of ~%d bytes (under %d): %v", c.pad, frameMaxBefore, err)
			}
			if code, err := connackCode(pk); err != nil || code != 0 {
				t.Fatalf("CONNECT of ~%d bytes (under %d): %v, want CONNACK 0", c.pad, frameMaxBefore, pk)
			}
			continue
		}
		pkts, err := r.untilClosed(waitShort)
		if err != nil {
			t.Fatal(err)
		}
		if level == 4 {
			if len(pkts) != 0 {
				t.Fatalf("3.1.1 CONNECT of ~%d bytes (over %d before login): got %v, want the close and nothing else", c.pad, frameMaxBefore, pkts)
			}
			continue
		}
		if len(pkts) != 1 {
			t.Fatalf("v5 CONNECT of ~%d bytes (over %d before login): got %v, want CONNACK 0x95 then the close", c.pad, frameMaxBefore, pkts)
		}
		if code, err := connackCode(pkts[0]); err != nil || code != 0x95 {
			t.Fatalf("v5 CONNECT of ~%d bytes (over %d before login): got %v, want CONNACK 0x95", c.pad, frameMaxBefore, pkts[0])
		}
	}
}

// mqttAfterLogin: after CONNACK an 8 KiB PUBLISH comes back through a
// subscription; a PUBLISH over the packet limit (max_frame_size + 64 KiB,
// announced in the v5 CONNACK) gets v5 DISCONNECT 0x95 [MQTT-3.2.2-15] —
// over WebSocket too, where it comes as one message — or on 3.1.1 the close
// and nothing else.
func mqttAfterLogin(t *testing.T, p *proc, tr string, level byte) {
	nc, err := openMQTT(p, tr, "")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := newRawMQTT(nc)
	if err := r.write(connectPacket(connectSpec{level: level, id: uniq("frames-"), clean: true})); err != nil {
		t.Fatal(err)
	}
	ca, err := r.read(waitShort)
	if err != nil {
		t.Fatalf("CONNACK: %v", err)
	}
	if code, err := connackCode(ca); err != nil || code != 0 {
		t.Fatalf("CONNACK %v", ca)
	}
	if level == 5 {
		// The limit is announced, so clients can keep to it [MQTT-3.2.2-15].
		v := connackProperty(ca, 0x27, 4)
		if v == nil || binary.BigEndian.Uint32(v) != packetMax {
			t.Errorf("%s: CONNACK Maximum Packet Size %v, want %d (max_frame_size + 64 KiB)", tr, v, packetMax)
		}
	}
	topic := uniq("frames/mqtt-")
	sb := []byte{0, 1}
	if level == 5 {
		sb = append(sb, 0)
	}
	if err := r.write(packet(0x82, append(appendStr(sb, topic), 0))); err != nil {
		t.Fatal(err)
	}
	if sa, err := r.read(waitShort); err != nil || sa.typ() != 9 {
		t.Fatalf("SUBACK: %v %v", sa, err)
	}
	big := bytes.Repeat([]byte("b"), 8<<10)
	if err := r.write(publishPacket(level, topic, big)); err != nil {
		t.Fatal(err)
	}
	pk, err := r.read(waitShort)
	if err != nil || pk.typ() != 3 || !bytes.HasSuffix(pk.body, big) {
		t.Fatalf("an %d-byte PUBLISH (over the before-login limit, under max_frame_size) did not come back: %v %v", len(big), pk, err)
	}
	over := bytes.Repeat([]byte("o"), packetMax+1024)
	if err := r.write(publishPacket(level, topic, over)); err != nil {
		t.Logf("write of the oversize PUBLISH: %v", err)
	}
	pkts, err := r.untilClosed(waitShort)
	if err != nil {
		t.Fatal(err)
	}
	if level == 4 {
		if len(pkts) != 0 {
			t.Fatalf("3.1.1 PUBLISH of %d bytes (packet limit %d): got %v, want the close and nothing else", len(over), packetMax, pkts)
		}
		return
	}
	if len(pkts) != 1 || pkts[0].typ() != 14 || len(pkts[0].body) < 1 || pkts[0].body[0] != 0x95 {
		t.Fatalf("v5 PUBLISH of %d bytes (packet limit %d): got %v, want DISCONNECT 0x95 then the close", len(over), packetMax, pkts)
	}
}

// untilClosedOr reads one frame when ok (the login answer), else until the
// close.
func (r *rawSTOMP) untilClosedOr(ok bool) ([]*frame.Frame, error) {
	if ok {
		f, err := r.next(waitShort)
		if err != nil {
			return nil, err
		}
		return []*frame.Frame{f}, nil
	}
	return r.untilClosed(waitShort)
}

func framesString(fs []*frame.Frame) string {
	if len(fs) == 0 {
		return "nothing (closed)"
	}
	var s []string
	for _, f := range fs {
		s = append(s, frameString(f))
	}
	return strings.Join(s, "; ")
}

// connackProperty returns the value of a fixed-size v5 CONNACK property
// (n bytes), or nil.
func connackProperty(ca pkt, id byte, n int) []byte {
	if len(ca.body) < 3 {
		return nil
	}
	plen, i, mul := 0, 2, 1
	for ; i < len(ca.body); i++ {
		plen += int(ca.body[i]&0x7f) * mul
		mul *= 128
		if ca.body[i]&0x80 == 0 {
			i++
			break
		}
	}
	props := ca.body[i:min(len(ca.body), i+plen)]
	for j := 0; j < len(props); {
		pid := props[j]
		j++
		var size int
		switch pid {
		case 0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A:
			size = 1
		case 0x13, 0x21, 0x22, 0x23:
			size = 2
		case 0x02, 0x11, 0x18, 0x27:
			size = 4
		case 0x0B:
			size = 1
			for k := j; k < len(props) && props[k]&0x80 != 0; k++ {
				size++
			}
		case 0x26:
			if j+2 > len(props) {
				return nil
			}
			l1 := int(binary.BigEndian.Uint16(props[j:]))
			if j+2+l1+2 > len(props) {
				return nil
			}
			size = 4 + l1 + int(binary.BigEndian.Uint16(props[j+2+l1:]))
		default:
			if j+2 > len(props) {
				return nil
			}
			size = 2 + int(binary.BigEndian.Uint16(props[j:]))
		}
		if j+size > len(props) {
			return nil
		}
		if pid == id && size == n {
			return props[j : j+size]
		}
		j += size
	}
	return nil
}

// TestOversizeDeclared: a frame that only announces its size — an MQTT fixed
// header with a remaining length of 200 MB, a STOMP frame with
// content-length 200 MB — is refused on the announcement, without waiting
// for (or allocating) the body: before login (MQTT: the close, as the
// protocol version is not known yet; STOMP: ERROR "frame too large") and
// after (MQTT v5 DISCONNECT 0x95, 3.1.1 the close; STOMP ERROR). The
// refusal must come well before connect_timeout (raised to 60s here).
func TestOversizeDeclared(t *testing.T) {
	t.Parallel()
	p := startBroker(t, fmt.Sprintf(`
[limits]
max_frame_size = %d
max_frame_size_before_login = %d
connect_timeout = "60s"
`, frameMax, frameMaxBefore))
	nb := v5Neighbour(t, p, "tcp", neighbourIP, "", "")
	const huge = 200 << 20
	hugeHeader := func(b0 byte) []byte { return appendVarInt([]byte{b0}, huge) }
	err := nb.during(func() {
		for _, tr := range transports {
			t.Run("mqtt/before-login/"+tr, func(t *testing.T) {
				nc, err := openMQTT(p, tr, "")
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				r := newRawMQTT(nc)
				_ = r.write(append(hugeHeader(0x10), 0, 4, 'M', 'Q', 'T', 'T', 5))
				if pkts, err := r.untilClosed(waitShort); err != nil {
					t.Errorf("CONNECT announcing %d bytes: %v", huge, err)
				} else if len(pkts) > 1 || (len(pkts) == 1 && (pkts[0].typ() != 2 || pkts[0].body[1] != 0x95)) {
					t.Errorf("CONNECT announcing %d bytes: got %v, want the close (or CONNACK 0x95)", huge, pkts)
				}
			})
			for _, level := range []byte{4, 5} {
				t.Run(fmt.Sprintf("mqtt%d/after-login/%s", level, tr), func(t *testing.T) {
					nc, err := openMQTT(p, tr, "")
					if err != nil {
						t.Fatal(err)
					}
					defer nc.Close()
					r := newRawMQTT(nc)
					_ = r.write(connectPacket(connectSpec{level: level, id: uniq("decl-"), clean: true}))
					if ca, err := r.read(waitShort); err != nil || ca.typ() != 2 || ca.body[1] != 0 {
						t.Fatalf("CONNACK %v %v", ca, err)
					}
					_ = r.write(append(hugeHeader(0x30), 0, 1, 'x'))
					pkts, err := r.untilClosed(waitShort)
					if err != nil {
						t.Fatalf("PUBLISH announcing %d bytes: %v", huge, err)
					}
					if level == 5 && (len(pkts) != 1 || pkts[0].typ() != 14 || pkts[0].body[0] != 0x95) {
						t.Errorf("v5 PUBLISH announcing %d bytes: got %v, want DISCONNECT 0x95", huge, pkts)
					}
					if level == 4 && len(pkts) != 0 {
						t.Errorf("3.1.1 PUBLISH announcing %d bytes: got %v, want the close", huge, pkts)
					}
				})
			}
			t.Run("stomp/before-login/"+tr, func(t *testing.T) {
				nc, err := openSTOMP(p, tr, "")
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				r := newRawSTOMP(nc)
				_, _ = nc.Write([]byte(fmt.Sprintf("CONNECT\naccept-version:1.2\nhost:localhost\ncontent-length:%d\n\n", huge)))
				fs, err := r.untilClosed(waitShort)
				if err != nil {
					t.Fatalf("CONNECT announcing a %d-byte body: %v", huge, err)
				}
				if len(fs) != 1 || fs[0].Command != "ERROR" || fs[0].Header.Get("message") != "frame too large" {
					t.Errorf("CONNECT announcing a %d-byte body: got %s, want ERROR message:frame too large", huge, framesString(fs))
				}
			})
			t.Run("stomp/after-login/"+tr, func(t *testing.T) {
				nc, err := openSTOMP(p, tr, "")
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				r := newRawSTOMP(nc)
				_ = r.send("CONNECT", nil, "accept-version", "1.2", "host", "localhost", "heart-beat", "0,0")
				if f, err := r.next(waitShort); err != nil || f.Command != "CONNECTED" {
					t.Fatalf("CONNECT: %v %v", f, err)
				}
				_, _ = nc.Write([]byte(fmt.Sprintf("SEND\ndestination:/topic/decl\ncontent-length:%d\n\n", huge)))
				fs, err := r.untilClosed(waitShort)
				if err != nil {
					t.Fatalf("SEND announcing a %d-byte body: %v", huge, err)
				}
				if len(fs) != 1 || fs[0].Command != "ERROR" || fs[0].Header.Get("message") != "frame too large" {
					t.Errorf("SEND announcing a %d-byte body: got %s, want ERROR message:frame too large", huge, framesString(fs))
				}
			})
		}
	})
	if err != nil {
		t.Error(err)
	}
	nb.report(t)
}
