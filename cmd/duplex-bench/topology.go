package main

// topology says which topic each publisher sends to and each subscriber
// listens on.
type topology struct {
	topics   int
	pubTopic []int
	subTopic []int
}

// newTopology derives topics from the counts: when subscribers are a
// multiple of publishers, publisher i owns topic i and subscribers are
// dealt round-robin over the topics (10->10: pairs; 1->100: one topic fanned
// out); when publishers are a multiple of subscribers, subscriber j owns
// topic j (fan-in); otherwise everyone shares one topic.
func newTopology(pubs, subs int) topology {
	t := topology{pubTopic: make([]int, pubs), subTopic: make([]int, subs)}
	switch {
	case subs == 0 || subs%pubs == 0:
		t.topics = pubs
		for i := range t.pubTopic {
			t.pubTopic[i] = i
		}
		for j := range t.subTopic {
			t.subTopic[j] = j % pubs
		}
	case pubs%subs == 0:
		t.topics = subs
		for i := range t.pubTopic {
			t.pubTopic[i] = i % subs
		}
		for j := range t.subTopic {
			t.subTopic[j] = j
		}
	default:
		t.topics = 1
	}
	return t
}

// subsOf returns the subscribers that receive publisher i's messages.
func (t topology) subsOf(i int) []int {
	var out []int
	for j, topic := range t.subTopic {
		if topic == t.pubTopic[i] {
			out = append(out, j)
		}
	}
	return out
}

// pubsOf returns the publishers whose messages subscriber j receives.
func (t topology) pubsOf(j int) []int {
	var out []int
	for i, topic := range t.pubTopic {
		if topic == t.subTopic[j] {
			out = append(out, i)
		}
	}
	return out
}
