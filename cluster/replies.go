package cluster

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
)

// replies matches the replies that callers send to the answers a worker
// sent them directly with the answers that wait for them. It is safe for
// concurrent use.
type replies struct {
	prefix string // of the reply subjects: prefix<token>
	sub    *nats.Subscription

	mu   sync.Mutex
	next uint64
	wait map[uint64]chan *nats.Msg
}

// newReplies subscribes to the reply subjects of a worker on nc.
func newReplies(nc *nats.Conn) (*replies, error) {
	r := &replies{prefix: nc.NewInbox() + ".", wait: make(map[uint64]chan *nats.Msg)}
	sub, err := nc.Subscribe(r.prefix+"*", r.on)
	if err != nil {
		return nil, fmt.Errorf("cluster: listening for the callers' replies: %w", err)
	}
	r.sub = sub
	return r, nil
}

// await returns a new reply subject, the channel its reply comes on, and
// the token that forget takes.
func (r *replies) await() (subject string, reply <-chan *nats.Msg, token uint64) {
	ch := make(chan *nats.Msg, 1)
	r.mu.Lock()
	r.next++
	token = r.next
	r.wait[token] = ch
	r.mu.Unlock()
	return r.prefix + strconv.FormatUint(token, 10), ch, token
}

// forget drops the reply subject of token, whether or not its reply came.
func (r *replies) forget(token uint64) {
	r.mu.Lock()
	delete(r.wait, token)
	r.mu.Unlock()
}

// on passes a reply to whoever waits for it; a reply that nobody waits for
// (it came too late) is dropped.
func (r *replies) on(m *nats.Msg) {
	token, err := strconv.ParseUint(strings.TrimPrefix(m.Subject, r.prefix), 10, 64)
	if err != nil {
		return
	}
	r.mu.Lock()
	ch := r.wait[token]
	delete(r.wait, token)
	r.mu.Unlock()
	if ch != nil {
		ch <- m
	}
}

// close stops listening for replies.
func (r *replies) close() { _ = r.sub.Unsubscribe() }
