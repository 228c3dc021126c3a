package main

import (
	"strings"
	"testing"

	"github.com/duplexmq/duplex/broker"
)

// The dead-letter settings reach broker.Config: defaults, 0 as no limit,
// empty as off, and names that would clash are refused.
func TestDeadLetterSettings(t *testing.T) {
	o, err := parseOptions(nil, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	b := o.broker
	if b.MaxRedeliveries != 20 || b.DeadLetterPrefix != "DLQ." || b.DeadLetterTopic != "$DLQ/" || b.NoDeadLetter || b.NoDeadLetterTopic {
		t.Fatalf("defaults: %d %q %q %v %v", b.MaxRedeliveries, b.DeadLetterPrefix, b.DeadLetterTopic, b.NoDeadLetter, b.NoDeadLetterTopic)
	}
	o, err = parseOptions([]string{"-limits-max-redeliveries", "0", "-stomp-dead-letter-prefix", "", "-stomp-dead-letter-topic", ""}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if b := o.broker; b.MaxRedeliveries >= 0 || !b.NoDeadLetter || !b.NoDeadLetterTopic {
		t.Fatalf("0 and empty: max %d, off %v %v", b.MaxRedeliveries, b.NoDeadLetter, b.NoDeadLetterTopic)
	}
	o, err = parseOptions(nil, envMap(map[string]string{"DUPLEX_STOMP_DEAD_LETTER_PREFIX": "dead.", "DUPLEX_LIMITS_MAX_REDELIVERIES": "5"}))
	if err != nil {
		t.Fatal(err)
	}
	if b := o.broker; b.MaxRedeliveries != 5 || b.DeadLetterPrefix != "dead." {
		t.Fatalf("env: %d %q", b.MaxRedeliveries, b.DeadLetterPrefix)
	}
	for _, args := range [][]string{
		{"-stomp-dead-letter-prefix", broker.DurableQueuePrefix},
		{"-stomp-dead-letter-prefix", broker.TempQueuePrefix + "x"},
		{"-stomp-dead-letter-topic", "dlq/+/"},
		{"-limits-max-redeliveries", "-1"},
	} {
		if _, err := parseOptions(args, noEnv); err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(args[0], "-")[:5]) {
			t.Errorf("%q: err %v, want a refusal naming the setting", args, err)
		}
	}
}
