package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Client schedules calls on the workers of a cluster: it is a
// task.Scheduler, so task.Def.Schedule takes it where it takes a local
// dispatcher, and the future is the same. Get one from New; end it with
// Close. Its methods are safe for concurrent use.
//
// Schedule never waits on the network: the call is published by a
// goroutine of the Client, and a publish that fails, or that the server
// does not confirm within Config.PublishTimeout, fails the future.
type Client struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	calls      jetstream.Stream
	n          names
	cfg        Config
	log        hclog.Logger
	id         string // this client's id: the first word of its calls' ids
	maxPayload int64
	pubOpts    []jetstream.PublishOpt // of every call's publish

	mu      sync.Mutex
	pending map[uint64]*entry // calls not resolved yet, by number
	queue   []*entry          // calls to publish
	closed  bool
	seq     uint64

	wake      chan struct{} // a call was queued; capacity 1
	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when the publisher has ended
	watched   chan struct{} // closed when watch has ended
	status    chan nats.Status
	results   jetstream.ConsumeContext // guarded by mu
	resultsAt jetstream.Stream
	bg        sync.WaitGroup // cancel procedures

	progressSub *nats.Subscription // the workers' progress reports of this client's calls
	answerSub   *nats.Subscription // the answers that workers send this client directly
}

// outCall is one call as the Client takes it from task.Def.Schedule: what
// crosses the wire, and the two ways of resolving its future.
type outCall struct {
	wire    wireCall
	ctx     context.Context // may be nil
	resolve func(payload []byte)
	fail    func(err error)
	done    <-chan struct{} // closed once the future is resolved
	// cancelled makes the error of a call stopped before it ran.
	cancelled func(cause error) error
	// progress stores a report from the worker; end what the call cost
	// (nil: not known) and the last lines its task logged, before the
	// future resolves.
	progress func(wireProgress)
	end      func(u *wireUsage, log []string)
}

// entryState is where a call is between Schedule and its result.
type entryState int

const (
	queued    entryState = iota // waiting for the publisher
	sent                        // published, not confirmed yet
	stored                      // confirmed: in the calls stream at seq
	abandoned                   // its context ended: being cancelled
)

// entry is a call of this Client that has not resolved yet. Its fields
// below the line are guarded by Client.mu.
type entry struct {
	n     uint64
	call  outCall
	msg   *nats.Msg
	first time.Time // when it was first published

	state   entryState
	seq     uint64 // its stream sequence, once stored
	cause   error  // why it is being cancelled
	stopCtx func() bool
	timer   *time.Timer
}

// New returns a Client that schedules calls over nc, a connection made
// with the NATS client's own nats.Connect (TLS, credentials and nkeys are
// its options) or an embedded node's Conn. It makes the streams and the
// consumer when they are missing, and sets the consumer's ack wait to
// cfg.AckWait. ctx bounds the set-up only; while JetStream is not ready
// (a cluster electing its leaders) New tries again until ctx ends. The
// caller keeps nc, and closes it after Close.
func New(ctx context.Context, nc *nats.Conn, cfg Config) (*Client, error) {
	if nc == nil {
		return nil, errors.New("cluster: New with a nil connection")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n, err := newNames(cfg.Prefix)
	if err != nil {
		return nil, err
	}
	c := &Client{
		nc:         nc,
		n:          n,
		cfg:        cfg,
		log:        cfg.Logger,
		id:         nuid.Next(),
		maxPayload: nc.MaxPayload(),
		pending:    make(map[uint64]*entry),
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		watched:    make(chan struct{}),
		pubOpts: []jetstream.PublishOpt{
			jetstream.WithStallWait(cfg.PublishTimeout),
			jetstream.WithRetryAttempts(int(cfg.PublishTimeout / (250 * time.Millisecond))),
			jetstream.WithRetryWait(250 * time.Millisecond),
		},
	}
	c.js, err = jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout),
		jetstream.WithPublishAsyncAckHandler(c.published),
		jetstream.WithPublishAsyncErrHandler(c.publishFailed),
	)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if _, err := setUp(ctx, c.js, n, cfg, true); err != nil {
		return nil, err
	}
	if c.calls, err = c.js.Stream(ctx, n.callStream); err != nil {
		return nil, fmt.Errorf("cluster: the calls stream: %w", err)
	}
	if c.results, err = c.readResults(ctx); err != nil {
		return nil, err
	}
	if c.resultsAt, err = c.js.Stream(ctx, n.resultStream); err != nil {
		return nil, fmt.Errorf("cluster: the results stream: %w", err)
	}
	if c.progressSub, err = nc.Subscribe(n.progressSubject(c.id+".*"), c.progressed); err != nil {
		c.results.Stop()
		return nil, fmt.Errorf("cluster: subscribing to progress reports: %w", err)
	}
	if c.answerSub, err = nc.Subscribe(n.answerSubject(c.id+".*"), c.delivered); err != nil {
		_ = c.progressSub.Unsubscribe()
		c.results.Stop()
		return nil, fmt.Errorf("cluster: subscribing to answers: %w", err)
	}
	c.status = nc.StatusChanged(nats.CONNECTED)
	go c.publisher()
	go c.watch()
	return c, nil
}

// readResults starts an ordered consumer of this client's results.
func (c *Client) readResults(ctx context.Context) (jetstream.ConsumeContext, error) {
	cons, err := c.js.OrderedConsumer(ctx, c.n.resultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{c.n.resultSubject(c.id + ".>")},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: reading the results: %w", err)
	}
	cc, err := cons.Consume(c.result)
	if err != nil {
		return nil, fmt.Errorf("cluster: reading the results: %w", err)
	}
	return cc, nil
}

// watch catches up after each reconnection: a server that restarted
// has lost the consumer that brought this client its results, and the
// results stored meanwhile would reach it late or never.
func (c *Client) watch() {
	defer close(c.watched)
	for {
		select {
		case s, ok := <-c.status:
			if !ok {
				return
			}
			if s == nats.CONNECTED {
				c.catchUp()
			}
		case <-c.stop:
			return
		}
	}
}

// catchUp starts a new consumer of the results, then looks up the stored
// result of every call that is waiting for one.
func (c *Client) catchUp() {
	delay := 50 * time.Millisecond
	var cc jetstream.ConsumeContext
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var err error
		cc, err = c.readResults(ctx)
		cancel()
		if err == nil {
			break
		}
		c.log.Debug("reading the results after a reconnection", "error", err)
		select {
		case <-c.stop:
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
	c.mu.Lock()
	old := c.results
	c.results = cc
	var waiting []*entry
	for _, e := range c.pending {
		if e.state == stored || e.state == abandoned {
			waiting = append(waiting, e)
		}
	}
	c.mu.Unlock()
	old.Stop()
	for _, e := range waiting {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		m, err := c.resultsAt.GetLastMsgForSubject(ctx, c.n.resultSubject(e.msg.Header.Get(hdrID)))
		cancel()
		if err == nil {
			payload, err := decodeResult(m.Header, m.Data)
			c.finishWith(e, m.Header, payload, err)
		}
	}
}

// submit takes a call in; it never waits on the network.
func (c *Client) submit(oc outCall) {
	w := &oc.wire
	if w.Key != "" {
		if err := checkKey(w.Key); err != nil {
			oc.fail(err)
			return
		}
	}
	if ctx := oc.ctx; ctx != nil {
		if err := ctx.Err(); err != nil {
			oc.fail(oc.cancelled(err))
			return
		}
	}
	if !w.Deadline.IsZero() && !time.Now().Before(w.Deadline) {
		oc.fail(oc.cancelled(context.DeadlineExceeded))
		return
	}
	w.MaxDeliver = c.cfg.MaxDeliver
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		oc.fail(ErrClosed)
		return
	}
	c.seq++
	e := &entry{n: c.seq, call: oc}
	w.ID = c.id + "." + strconv.FormatUint(e.n, 10)
	e.msg = w.encode(c.n.calls)
	if size := msgSize(e.msg); size > c.maxPayload {
		c.mu.Unlock()
		oc.fail(fmt.Errorf("cluster: task %q: the call is %d bytes, over the server's maximum message size of %d bytes (max_payload); raise max_payload in the server's configuration (embedded.MaxPayload for an embedded node), or pass large data another way, such as a file or an object store",
			w.Task, size, c.maxPayload))
		return
	}
	c.pending[e.n] = e
	c.queue = append(c.queue, e)
	if ctx := oc.ctx; ctx != nil {
		e.stopCtx = context.AfterFunc(ctx, func() { c.abandon(e, ctx.Err()) })
	}
	if !w.Deadline.IsZero() {
		// The worker stops the call at its deadline and answers; this
		// timer is for a call that no worker answers for.
		e.timer = time.AfterFunc(time.Until(w.Deadline)+c.cfg.CancelWait, func() { c.abandon(e, context.DeadlineExceeded) })
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// msgSize is the size of m as the server counts it against max_payload.
func msgSize(m *nats.Msg) int64 {
	n := len(m.Data) + len("NATS/1.0\r\n\r\n")
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	return int64(n)
}

// publisher publishes the queued calls, off the callers' goroutines.
func (c *Client) publisher() {
	defer close(c.done)
	for {
		select {
		case <-c.wake:
		case <-c.stop:
			return
		}
		c.mu.Lock()
		q := c.queue[:0:0]
		for _, e := range c.queue {
			if e.state == queued && c.pending[e.n] == e {
				e.state = sent
				if e.first.IsZero() {
					e.first = time.Now()
				}
				q = append(q, e)
			}
		}
		c.queue = nil
		c.mu.Unlock()
		for _, e := range q {
			_, err := c.js.PublishMsgAsync(e.msg, c.pubOpts...)
			if err != nil {
				c.publishFailed(c.js, e.msg, err)
			}
		}
	}
}

// entryOf returns the pending entry whose call id m carries, or nil.
func (c *Client) entryOf(m *nats.Msg) *entry {
	n, ok := c.number(m)
	if !ok {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending[n]
}

// number returns the number of this client's call that m carries.
func (c *Client) number(m *nats.Msg) (uint64, bool) {
	id := m.Header.Get(hdrID)
	if len(id) <= len(c.id) || id[len(c.id)] != '.' || id[:len(c.id)] != c.id {
		return 0, false
	}
	n, err := strconv.ParseUint(id[len(c.id)+1:], 10, 64)
	return n, err == nil
}

// published is called when the server confirms that it stored a call.
func (c *Client) published(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) {
	n, ok := c.number(m)
	if !ok {
		return
	}
	c.mu.Lock()
	e := c.pending[n]
	if e == nil {
		c.mu.Unlock()
		return
	}
	e.seq = ack.Sequence
	cancel := e.state == abandoned
	if !cancel {
		e.state = stored
	}
	c.mu.Unlock()
	if cancel {
		c.startCancel(e)
	}
}

// publishFailed is called when a call could not be published. A lost
// connection puts the call back in the queue, until PublishTimeout since
// its first try: the nats client publishes it again once it reconnects.
func (c *Client) publishFailed(_ jetstream.JetStream, m *nats.Msg, err error) {
	e := c.entryOf(m)
	if e == nil {
		return
	}
	c.mu.Lock()
	gone := e.state == abandoned
	c.mu.Unlock()
	if gone {
		c.finish(e, nil, e.call.cancelled(e.cause))
		return
	}
	if errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrReconnectBufExceeded) {
		c.mu.Lock()
		again := c.pending[e.n] == e && e.state == sent && time.Since(e.first) < c.cfg.PublishTimeout && !c.closed
		if again {
			e.state = queued
			c.queue = append(c.queue, e)
		}
		c.mu.Unlock()
		if again {
			time.AfterFunc(100*time.Millisecond, func() {
				select {
				case c.wake <- struct{}{}:
				default:
				}
			})
			return
		}
	}
	var why string
	switch {
	case errors.Is(err, jetstream.ErrAsyncPublishTimeout):
		why = fmt.Sprintf("the server did not confirm it within %v (Config.PublishTimeout); it may still run", c.cfg.PublishTimeout)
	case errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		why = fmt.Sprintf("too many calls waited for the server's confirmation for %v (Config.PublishTimeout)", c.cfg.PublishTimeout)
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		why = fmt.Sprintf("no JetStream server took it (is the stream %s there, and JetStream up?)", c.n.callStream)
	default:
		c.finish(e, nil, fmt.Errorf("cluster: task %q: publishing the call: %w", e.call.wire.Task, err))
		return
	}
	c.finish(e, nil, fmt.Errorf("cluster: task %q: publishing the call: %s: %w", e.call.wire.Task, why, err))
}

// result is called for each result that a worker stored for this client.
func (c *Client) result(m jetstream.Msg) {
	c.take(m.Subject(), m.Headers(), m.Data())
}

// delivered is called for each answer that a worker sends this client
// directly. The reply tells the worker that its answer arrived, so that it
// acks the call without storing the answer; an answer that finds no
// client here gets no reply, and the worker stores it in the results
// stream instead.
func (c *Client) delivered(m *nats.Msg) {
	if m.Reply != "" {
		_ = m.Respond(nil)
	}
	c.take(m.Subject, m.Header, m.Data)
}

// take resolves the call that a result on subject answers, unless it is
// resolved already.
func (c *Client) take(subject string, h nats.Header, data []byte) {
	num := subject[strings.LastIndexByte(subject, '.')+1:]
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		c.log.Warn("a result on a subject that is not a call's", "subject", subject)
		return
	}
	c.mu.Lock()
	e := c.pending[n]
	if e == nil {
		c.mu.Unlock()
		return // resolved already: a second answer, or one after the call failed here
	}
	delete(c.pending, n)
	c.mu.Unlock()
	payload, err := decodeResult(h, data)
	e.call.takeEnd(h)
	c.resolve(e, payload, err)
}

// takeEnd hands the call's future what the call cost and the last lines
// its task logged, from its result's header, if the worker said.
func (oc *outCall) takeEnd(h nats.Header) {
	if oc.end == nil {
		return
	}
	var usage *wireUsage
	if s := h.Get(hdrUsage); s != "" {
		if u, ok := decodeUsage(s); ok {
			usage = &u
		}
	}
	var log []string
	if s := h.Get(hdrLog); s != "" {
		log = decodeLog(s)
	}
	if usage != nil || len(log) > 0 {
		oc.end(usage, log)
	}
}

// progressed takes a progress report that a worker published for one of
// this client's calls.
func (c *Client) progressed(m *nats.Msg) {
	num := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return
	}
	p, err := decodeProgress(m.Data)
	if err != nil {
		c.log.Debug("a progress report that does not read", "subject", m.Subject, "error", err)
		return
	}
	c.mu.Lock()
	e := c.pending[n]
	c.mu.Unlock()
	if e != nil && e.call.progress != nil {
		e.call.progress(p)
	}
}

// decodeResult turns a stored result into the answer or the error.
func decodeResult(h nats.Header, data []byte) ([]byte, error) {
	worker := h.Get(hdrWorker)
	switch h.Get(hdrStatus) {
	case statusOK:
		return data, nil
	case statusError:
		var w wireError
		if err := json.Unmarshal(data, &w); err != nil {
			return nil, &WorkerError{Worker: worker, Err: fmt.Errorf("cluster: the worker's error could not be read: %w", err)}
		}
		return nil, &WorkerError{Worker: worker, Err: fromWire(&w)}
	default:
		return nil, &WorkerError{Worker: worker, Err: fmt.Errorf("cluster: a result with the status %q; the worker may be of a newer version", h.Get(hdrStatus))}
	}
}

// finish resolves e with payload or err, unless it is resolved already,
// and reports whether it did.
func (c *Client) finish(e *entry, payload []byte, err error) bool {
	return c.finishWith(e, nil, payload, err)
}

// finishWith is finish for a stored result with header h (nil: none),
// which may say what the call cost.
func (c *Client) finishWith(e *entry, h nats.Header, payload []byte, err error) bool {
	c.mu.Lock()
	if c.pending[e.n] != e {
		c.mu.Unlock()
		return false
	}
	delete(c.pending, e.n)
	c.mu.Unlock()
	e.call.takeEnd(h)
	c.resolve(e, payload, err)
	return true
}

// resolve resolves e, which its caller took out of pending.
func (c *Client) resolve(e *entry, payload []byte, err error) {
	if e.stopCtx != nil {
		e.stopCtx()
	}
	if e.timer != nil {
		e.timer.Stop()
	}
	if err != nil {
		e.call.fail(err)
	} else {
		e.call.resolve(payload)
	}
}

// abandon handles the end of a call's context, or a deadline that passed
// without an answer: a call not published yet fails at once; a published
// one is taken out of the stream and its worker asked to stop it.
func (c *Client) abandon(e *entry, cause error) {
	c.mu.Lock()
	if c.pending[e.n] != e || e.state == abandoned {
		c.mu.Unlock()
		return
	}
	prev := e.state
	e.state, e.cause = abandoned, cause
	c.mu.Unlock()
	switch prev {
	case queued:
		c.finish(e, nil, e.call.cancelled(cause))
	case stored:
		c.startCancel(e)
	case sent:
		// published calls the cancel when the server confirms the call.
	}
}

// startCancel runs the cancel procedure of a stored call on a goroutine.
func (c *Client) startCancel(e *entry) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.bg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.bg.Done()
		c.cancel(e)
	}()
}

// cancel deletes a stored call from the calls stream, so that no worker
// takes it from now on, and asks the workers to stop it. A worker that
// runs it answers, and its result (a *result.CancelError, or the value if
// it was done) resolves the future. Without an answer within CancelWait
// no worker had it: it fails as never started.
func (c *Client) cancel(e *entry) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.CancelWait)
	defer cancel()
	if err := c.calls.DeleteMsg(ctx, e.seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		c.log.Debug("deleting a cancelled call", "id", e.msg.Header.Get(hdrID), "error", err)
	}
	req := &nats.Msg{Subject: c.n.cancel, Header: nats.Header{hdrID: []string{e.msg.Header.Get(hdrID)}}}
	_, err := c.nc.RequestMsgWithContext(ctx, req)
	if err != nil {
		c.finish(e, nil, e.call.cancelled(e.cause))
		return
	}
	// A worker is stopping it: its answer comes as a result. Should the
	// worker be lost meanwhile, nothing brings the call back (it left the
	// stream), so the future fails after an ack wait.
	t := time.NewTimer(c.cfg.AckWait + c.cfg.CancelWait)
	defer t.Stop()
	select {
	case <-t.C:
		c.finish(e, nil, e.call.cancelled(e.cause))
	case <-c.stop:
	case <-e.call.done:
	}
}

// fetch waits for the result stored under key, or for ctx to end.
func (c *Client) fetch(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	cons, err := c.js.OrderedConsumer(ctx, c.n.resultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{c.n.keySubject(key)},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: reading the result under the key %q: %w", key, err)
	}
	got := make(chan jetstream.Msg, 1)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case got <- m:
		default:
		}
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: reading the result under the key %q: %w", key, err)
	}
	defer func() {
		cc.Stop()
		<-cc.Closed()
	}()
	select {
	case m := <-got:
		return decodeResult(m.Headers(), m.Data())
	case <-ctx.Done():
		return nil, fmt.Errorf("cluster: no result under the key %q yet: %w", key, ctx.Err())
	}
}

// Close stops the Client: calls not resolved yet fail with ErrClosed (they
// may still run on a worker). It does not close the connection. Calling
// it again does nothing.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	left := c.pending
	c.pending = map[uint64]*entry{}
	c.queue = nil
	c.mu.Unlock()
	close(c.stop)
	<-c.done
	_ = c.progressSub.Unsubscribe()
	_ = c.answerSub.Unsubscribe()
	c.nc.RemoveStatusListener(c.status)
	<-c.watched
	c.mu.Lock()
	results := c.results
	c.mu.Unlock()
	results.Stop()
	select {
	case <-results.Closed():
	case <-time.After(c.cfg.PublishTimeout):
		c.log.Warn("the consumer of the results did not stop", "waited", c.cfg.PublishTimeout)
	}
	c.bg.Wait()
	for _, e := range left {
		if e.stopCtx != nil {
			e.stopCtx()
		}
		if e.timer != nil {
			e.timer.Stop()
		}
		e.call.fail(ErrClosed)
	}
	return nil
}
