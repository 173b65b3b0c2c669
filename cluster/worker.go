package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// worker takes calls from the calls stream and runs them on a local
// dispatcher (see Serve).
type worker struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	cons    jetstream.Consumer
	results jetstream.Stream
	n       names
	sc      serveConfig
	log     hclog.Logger
	loc     *local
	ackWait time.Duration // the consumer's, which may not be sc.cfg.AckWait

	mu        sync.Mutex
	free      int                 // slots neither running a call nor asked for
	fetching  int                 // fetches under way
	running   map[string]*running // by call id
	cancelled map[string]time.Time
	stopping  bool
	gone      bool // the dispatcher was shut down or closed: take no more calls

	freed    chan struct{} // a slot was freed; capacity 1
	fetchers sync.WaitGroup
	slots    sync.WaitGroup
	calls    chan delivered // to an idle slot goroutine; unbuffered
	toStore  chan *toStore  // to the storer
	stored   chan struct{}  // closed when the storer has ended
	replies  *replies       // the callers' replies to answers sent them directly
}

// delivered is a call as the consumer delivered it.
type delivered struct {
	m  jetstream.Msg
	at time.Time
}

// toStore is the result of a call on its way to its caller, or to the
// results stream when the caller does not confirm it; the call is acked
// once the caller or the server confirms the result.
type toStore struct {
	m     jetstream.Msg
	res   *nats.Msg // on the call's result subject
	id    string    // the call's id
	task  string    // the call's task
	reply <-chan *nats.Msg
	token uint64
	paf   jetstream.PubAckFuture
	err   error
	sent  time.Time // when its result was sent
}

// stopReason says why a worker stopped a call of its own accord.
type stopReason int

const (
	notStopped stopReason = iota
	byCaller              // the caller cancelled it: its answer goes back
	leaseLost             // the worker could not renew its lease: another worker has it
	handBack              // the worker is shutting down: the call goes back to the stream
)

// running is a call that runs on the local dispatcher.
type running struct {
	cancel context.CancelFunc
	reason stopReason // guarded by worker.mu
}

func serve(ctx context.Context, nc *nats.Conn, loc *local, opts []ServeOption) error {
	if nc == nil {
		return errors.New("cluster: Serve with a nil connection")
	}
	sc, err := newServeConfig(opts)
	if err != nil {
		return err
	}
	n, err := newNames(sc.cfg.Prefix)
	if err != nil {
		return err
	}
	if sc.name == "" {
		host, _ := os.Hostname()
		sc.name = host + ":" + strconv.Itoa(os.Getpid())
	}
	if sc.maxCall == 0 {
		sc.maxCall = int(nc.MaxPayload())
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4*sc.slots))
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	cons, err := setUp(ctx, js, n, sc.cfg, false)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	results, err := js.Stream(ctx, n.resultStream)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("cluster: the results stream: %w", err)
	}
	w := &worker{
		nc:        nc,
		js:        js,
		cons:      cons,
		results:   results,
		n:         n,
		sc:        sc,
		log:       sc.cfg.Logger.With("worker", sc.name),
		loc:       loc,
		ackWait:   cons.CachedInfo().Config.AckWait,
		free:      sc.slots,
		running:   make(map[string]*running),
		cancelled: make(map[string]time.Time),
		freed:     make(chan struct{}, 1),
		calls:     make(chan delivered),
		toStore:   make(chan *toStore, sc.slots),
		stored:    make(chan struct{}),
	}
	if w.replies, err = newReplies(nc); err != nil {
		return err
	}
	sub, err := nc.Subscribe(n.cancel, w.onCancel)
	if err != nil {
		w.replies.close()
		return fmt.Errorf("cluster: listening for cancels: %w", err)
	}
	go w.storer()
	w.log.Debug("serving", "slots", sc.slots, "ack_wait", w.ackWait)
	err = w.fetch(ctx)
	w.shutdown()
	_ = sub.Unsubscribe()
	w.replies.close()
	return err
}

// fetch asks the consumer for as many calls as there are free slots,
// until ctx ends, the dispatcher ends or the connection is closed.
func (w *worker) fetch(ctx context.Context) error {
	delay := 10 * time.Millisecond
	// A fetch costs a subscription and a pull request: while one is out,
	// the next waits for a quarter of the slots to be free.
	batch := max(1, w.sc.slots/4)
	for {
		w.mu.Lock()
		k := w.free
		if k < batch && w.fetching > 0 {
			k = 0
		}
		w.free -= k
		gone := w.gone
		w.mu.Unlock()
		if gone {
			w.release(k)
			return errDispatcherEnded
		}
		if k == 0 {
			select {
			case <-w.freed:
				continue
			case <-ctx.Done():
				return nil
			case <-w.loc.ended():
				return errDispatcherEnded
			}
		}
		select {
		case <-ctx.Done():
			w.release(k)
			return nil
		case <-w.loc.ended():
			w.release(k)
			return errDispatcherEnded
		default:
		}
		fctx, cancel := context.WithTimeout(ctx, w.sc.fetchWait)
		msgs, err := w.cons.Fetch(k, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			w.release(k)
			if w.nc.IsClosed() {
				return fmt.Errorf("cluster: the connection was closed: %w", err)
			}
			w.log.Debug("fetching calls", "error", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(delay):
			}
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 10 * time.Millisecond
		w.mu.Lock()
		w.fetching++
		w.mu.Unlock()
		w.fetchers.Add(1)
		go func() {
			defer w.fetchers.Done()
			defer cancel()
			got := 0
			for m := range msgs.Messages() {
				got++
				w.take(m, time.Now())
			}
			w.mu.Lock()
			w.fetching--
			w.mu.Unlock()
			w.release(k - got)
		}()
	}
}

var errDispatcherEnded = errors.New("cluster: the worker's dispatcher was shut down or closed; its calls were handed back")

// release gives k slots back.
func (w *worker) release(k int) {
	w.mu.Lock()
	w.free += k
	w.mu.Unlock()
	select {
	case w.freed <- struct{}{}:
	default:
	}
}

// take starts the handling of one delivered call; it holds a slot until
// the call's answer is passed to the storer (whose queue holds as many
// answers as there are slots), or the call is acked or handed back. An
// idle slot goroutine takes it, or a new one; slot goroutines live until
// the worker stops, so that each grows its stack once.
func (w *worker) take(m jetstream.Msg, at time.Time) {
	w.mu.Lock()
	stopping := w.stopping || w.gone
	w.mu.Unlock()
	if stopping {
		_ = m.Nak()
		w.release(1)
		return
	}
	d := delivered{m: m, at: at}
	select {
	case w.calls <- d:
	default:
		w.slots.Add(1)
		go w.slot(d)
	}
}

// slot handles d, then every call given to it until the worker stops.
func (w *worker) slot(d delivered) {
	defer w.slots.Done()
	for {
		w.handle(d.m, d.at)
		w.release(1)
		var ok bool
		if d, ok = <-w.calls; !ok {
			return
		}
	}
}

// handle decides what to do with a delivered call, and does it.
func (w *worker) handle(m jetstream.Msg, at time.Time) {
	md, err := m.Metadata()
	if err != nil {
		w.log.Warn("a message without JetStream metadata", "subject", m.Subject(), "error", err)
		_ = m.Term()
		return
	}
	c, err := decodeCall(m.Headers(), m.Data(), w.sc.maxCall)
	if err != nil {
		w.deadLetter(m, md, &c, err.Error(), ErrMalformedCall)
		return
	}
	if int(md.NumDelivered) > c.MaxDeliver {
		w.deadLetter(m, md, &c, fmt.Sprintf("it was delivered %d times, more than the %d allowed (Config.MaxDeliver)", md.NumDelivered, c.MaxDeliver), ErrTooManyDeliveries)
		return
	}
	if !w.loc.known(c.Task) {
		if int(md.NumDelivered) >= c.MaxDeliver {
			w.deadLetter(m, md, &c, fmt.Sprintf("no worker that was offered it defines the task %q (offered %d times); define it with task.Define in the workers' program", c.Task, md.NumDelivered), ErrUnknownTask)
			return
		}
		w.log.Debug("handing back a call of a task this worker does not define", "task", c.Task, "id", c.ID)
		_ = m.NakWithDelay(w.sc.unknownDelay)
		return
	}
	if w.wasCancelled(c.ID) {
		w.answer(m, &c, nil, w.loc.neverStarted(c.Task, context.Canceled))
		return
	}
	if !c.Deadline.IsZero() && !time.Now().Before(c.Deadline) {
		w.answer(m, &c, nil, w.loc.neverStarted(c.Task, context.DeadlineExceeded))
		return
	}
	if md.NumDelivered > 1 || c.Key != "" {
		if w.answered(m, &c) {
			return
		}
	}
	w.run(m, &c, at)
}

// answered reports whether the call has a stored result already (a
// redelivery after the worker that stored it was lost before its ack, or a
// second call with the same key); if so it passes the result on and acks.
func (w *worker) answered(m jetstream.Msg, c *wireCall) bool {
	ctx, cancel := context.WithTimeout(context.Background(), w.ackWait)
	defer cancel()
	subject := w.n.resultSubject(c.ID)
	if c.Key != "" {
		subject = w.n.keySubject(c.Key)
	}
	stored, err := w.results.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		return false
	}
	if c.Key != "" {
		if !w.store(ctx, m, w.copyTo(stored, w.n.resultSubject(c.ID))) {
			return true
		}
	}
	w.log.Debug("the call was answered already", "task", c.Task, "id", c.ID)
	_ = m.Ack()
	return true
}

// copyTo makes a result message on subject from a stored one.
func (w *worker) copyTo(stored *jetstream.RawStreamMsg, subject string) *nats.Msg {
	h := nats.Header{}
	for _, k := range []string{hdrWorker, hdrStatus, hdrID, hdrTask, hdrUsage, hdrLog} {
		if v := stored.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	h.Set(hdrExpectLastSubjectSeq, "0")
	return &nats.Msg{Subject: subject, Header: h, Data: stored.Data}
}

// run runs the call on the local dispatcher, renewing its lease until it
// answers, and passes the answer on.
func (w *worker) run(m jetstream.Msg, c *wireCall, at time.Time) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &running{cancel: cancel}
	w.mu.Lock()
	if w.stopping {
		w.mu.Unlock()
		_ = m.Nak()
		return
	}
	if _, ok := w.cancelled[c.ID]; ok {
		// Its cancel came after handle looked.
		w.mu.Unlock()
		w.answer(m, c, nil, w.loc.neverStarted(c.Task, context.Canceled))
		return
	}
	w.running[c.ID] = r
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.running, c.ID)
		w.mu.Unlock()
	}()

	runCtx := ctx
	if w.sc.runToEnd && !c.Cancellable && c.Deadline.IsZero() && c.Activity == 0 {
		runCtx = nil
	}
	done, answer := w.loc.start(runCtx, c, func(p wireProgress) {
		// Core NATS, not the stream: a report is worth nothing once a
		// later one is out, and a lost one is replaced by the next.
		_ = w.nc.Publish(w.n.progressSubject(c.ID), p.encode())
	})
	lease := at.Add(w.ackWait)
	every := w.ackWait / 4
	t := time.NewTimer(every)
	defer t.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-t.C:
			if !w.renew(m, &lease) {
				w.stop(r, leaseLost)
				<-done
				w.log.Warn("could not renew the lease of a call within the ack wait; stopped it, another worker runs it", "task", c.Task, "id", c.ID)
				return
			}
			t.Reset(every)
		}
	}
	payload, err := answer()
	w.mu.Lock()
	reason := r.reason
	w.mu.Unlock()
	switch {
	case reason == leaseLost:
		return
	case err != nil && w.loc.handBack(err):
		// The dispatcher is going away: take no more calls, or they
		// would come straight back here.
		w.mu.Lock()
		w.gone = true
		w.mu.Unlock()
		w.log.Debug("handing a call back: the dispatcher ended", "task", c.Task, "id", c.ID)
		_ = m.Nak()
		w.release(0)
		return
	case reason == handBack && err != nil:
		w.log.Debug("handing a call back", "task", c.Task, "id", c.ID)
		_ = m.Nak()
		return
	}
	w.answer(m, c, payload, err)
}

// stop stops a running call for reason, unless it is being stopped already.
func (w *worker) stop(r *running, reason stopReason) {
	w.mu.Lock()
	if r.reason == notStopped {
		r.reason = reason
	}
	w.mu.Unlock()
	r.cancel()
}

// renew renews the lease of a running call with an in-progress ack that
// the server confirms, trying until the lease runs out. On success the
// lease lasts an ack wait from when the renewal was sent: the server
// cannot have redelivered the call before then.
func (w *worker) renew(m jetstream.Msg, lease *time.Time) bool {
	for {
		sent := time.Now()
		if !sent.Before(*lease) {
			return false
		}
		ctx, cancel := context.WithDeadline(context.Background(), *lease)
		_, err := w.nc.RequestWithContext(ctx, m.Reply(), []byte("+WPI"))
		cancel()
		if err == nil {
			*lease = sent.Add(w.ackWait)
			return true
		}
		w.log.Debug("renewing a lease", "error", err)
		if w.nc.IsClosed() {
			return false
		}
		time.Sleep(min(w.ackWait/20, time.Until(*lease)))
	}
}

// answer passes the call's result (its payload, or err) to the storer,
// which sends it to the caller and acks the call once the caller, or the
// server that stored it, confirms it. A call with a key has its result
// stored under the key first; when that fails the call is handed back.
func (w *worker) answer(m jetstream.Msg, c *wireCall, payload []byte, err error) {
	res := w.resultMsg(w.n.resultSubject(c.ID), c, payload, err)
	if size := msgSize(res) + storeExtra(c); size > w.nc.MaxPayload() {
		res = w.resultMsg(w.n.resultSubject(c.ID), c, nil, fmt.Errorf("cluster: task %q: the result is %d bytes, over the server's maximum message size of %d bytes (max_payload); raise max_payload in the server's configuration (embedded.MaxPayload for an embedded node), or return large data another way",
			c.Task, size, w.nc.MaxPayload()))
	}
	if c.Key != "" {
		forStore(res.Header, c.ID, c.Task)
		ctx, cancel := context.WithTimeout(context.Background(), w.ackWait)
		defer cancel()
		keyed := &nats.Msg{Subject: w.n.keySubject(c.Key), Header: res.Header, Data: res.Data}
		_, perr := w.js.PublishMsg(ctx, keyed)
		switch {
		case perr == nil:
		case wrongLastSeq(perr):
			// Another call with the same key stored its result first:
			// that one is the key's result, and this call's too.
			stored, gerr := w.results.GetLastMsgForSubject(ctx, keyed.Subject)
			if gerr != nil {
				w.log.Warn("reading the result stored under a key", "key", c.Key, "error", gerr)
				_ = m.NakWithDelay(time.Second)
				return
			}
			res = w.copyTo(stored, res.Subject)
		default:
			w.log.Warn("storing a result under its key; handing the call back", "task", c.Task, "key", c.Key, "error", perr)
			_ = m.NakWithDelay(time.Second)
			return
		}
	}
	w.toStore <- &toStore{m: m, res: res, id: c.ID, task: c.Task}
}

// storer sends the results that answer gives it to their callers and acks
// their calls: it sends each result as it comes, without waiting for the
// confirmation of the ones before, and hands it to the confirmer, which
// acks each call whose caller confirmed it has the result, or else whose
// result the server confirmed it stored (or held already), and hands back
// the others. It ends when toStore is closed, once the confirmer has
// ended.
func (w *worker) storer() {
	// At most as many results as there are slots, and two more, wait here
	// for their confirmation; the confirmer stores one at a time, within
	// the publishes that the worker's JetStream context lets wait.
	published := make(chan *toStore, w.sc.slots)
	confirmed := make(chan struct{})
	go func() {
		defer close(confirmed)
		w.confirmer(published)
	}()
	for a := range w.toStore {
		direct := &nats.Msg{Subject: w.n.answerSubject(a.id), Header: a.res.Header, Data: a.res.Data}
		direct.Reply, a.reply, a.token = w.replies.await()
		a.sent = time.Now()
		if err := w.nc.PublishMsg(direct); err != nil {
			w.replies.forget(a.token)
			a.reply = nil
		}
		published <- a
	}
	close(published)
	<-confirmed
	close(w.stored)
}

// confirmer acks the call of each result, in turn, once its caller
// confirmed that it has the result. A result that the caller does not
// confirm within a quarter of the ack wait (the caller is gone, or cut
// off) is stored in the results stream, where the caller finds it when it
// comes back, and its call acked once the server confirms; a call whose
// result the server refused, or did not confirm within the ack wait since
// the result was sent, is handed back. It ends when published is closed.
func (w *worker) confirmer(published <-chan *toStore) {
	timeout := time.NewTimer(w.ackWait)
	defer timeout.Stop()
	for a := range published {
		if a.reply != nil {
			timeout.Reset(time.Until(a.sent.Add(w.ackWait / 4)))
			var r *nats.Msg
			select {
			case r = <-a.reply:
			case <-timeout.C:
			}
			w.replies.forget(a.token)
			if r != nil && r.Header.Get(hdrNATSStatus) == "" {
				_ = a.m.Ack()
				continue
			}
		}
		forStore(a.res.Header, a.id, a.task)
		a.paf, a.err = w.js.PublishMsgAsync(a.res)
		if a.err == nil {
			timeout.Reset(time.Until(a.sent.Add(w.ackWait)))
			select {
			case <-a.paf.Ok():
			case a.err = <-a.paf.Err():
			case <-timeout.C:
				a.err = errStoreTimeout
			}
		}
		if a.err != nil && !wrongLastSeq(a.err) {
			w.log.Warn("storing a result; handing the call back", "subject", a.res.Subject, "error", a.err)
			_ = a.m.NakWithDelay(time.Second)
		} else {
			_ = a.m.Ack()
		}
	}
}

var errStoreTimeout = errors.New("cluster: the server did not confirm the result within the ack wait")

// store publishes a result; a result stored before for the same call
// counts as done. On failure it hands the call back and returns false.
func (w *worker) store(ctx context.Context, m jetstream.Msg, res *nats.Msg) bool {
	var err error
	if paf, perr := w.js.PublishMsgAsync(res); perr != nil {
		err = perr
	} else {
		select {
		case <-paf.Ok():
		case err = <-paf.Err():
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil && !wrongLastSeq(err) {
		w.log.Warn("storing a result; handing the call back", "subject", res.Subject, "error", err)
		_ = m.NakWithDelay(time.Second)
		return false
	}
	return true
}

// resultMsg makes the result message of c on subject, as it goes to the
// caller; forStore adds what a stored one carries.
func (w *worker) resultMsg(subject string, c *wireCall, payload []byte, err error) *nats.Msg {
	h := nats.Header{hdrWorker: []string{w.sc.name}}
	if c.usage != nil {
		h[hdrUsage] = []string{c.usage.encode()}
	}
	if l := encodeLog(c.log); l != "" {
		h[hdrLog] = []string{l}
	}
	if err == nil {
		h[hdrStatus] = []string{statusOK}
		return &nats.Msg{Subject: subject, Header: h, Data: payload}
	}
	h[hdrStatus] = []string{statusError}
	data, jerr := json.Marshal(toWire(err))
	if jerr != nil {
		data, _ = json.Marshal(&wireError{Kind: kindPlain, Message: err.Error()})
	}
	return &nats.Msg{Subject: subject, Header: h, Data: data}
}

// forStore adds to the header h of a result the headers that it carries
// in the results stream: the call's id and task, for those who read the
// stream, and the expectation that makes a second result of the call
// fail to be stored.
func forStore(h nats.Header, id, task string) {
	h[hdrID] = []string{id}
	h[hdrTask] = []string{task}
	h[hdrExpectLastSubjectSeq] = []string{"0"}
}

// storeExtra is how many bytes forStore adds to a result of c.
func storeExtra(c *wireCall) int64 {
	return int64(len(hdrID+hdrTask+hdrExpectLastSubjectSeq) + 3*len(": \r\n") + len(c.ID) + len(c.Task) + 1)
}

// wrongLastSeq reports whether err is JetStream's refusal of a publish
// whose subject holds a message already.
func wrongLastSeq(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// deadLetter moves a call to the dead-letter stream and fails its future
// with a *DeadLetterError, when the message names a call.
func (w *worker) deadLetter(m jetstream.Msg, md *jetstream.MsgMetadata, c *wireCall, reason string, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), w.ackWait)
	defer cancel()
	h := nats.Header{}
	for k, v := range m.Headers() {
		// JetStream's own headers (an expected stream or sequence, a
		// message id) would make the dead letter's publish fail, and the
		// call come back for ever.
		if !strings.HasPrefix(strings.ToLower(k), "nats-") {
			h[k] = v
		}
	}
	h.Set(hdrReason, reason)
	h.Set(hdrWorker, w.sc.name)
	h.Set("Procrastinate-Deliveries", strconv.FormatUint(md.NumDelivered, 10))
	dead := &nats.Msg{Subject: w.n.dead, Header: h, Data: m.Data()}
	if _, err := w.js.PublishMsg(ctx, dead); err != nil {
		w.log.Warn("moving a call to the dead letters; handing it back", "reason", reason, "error", err)
		_ = m.NakWithDelay(time.Second)
		return
	}
	w.log.Warn("moved a call to the dead letters", "task", c.Task, "id", c.ID, "reason", reason)
	if c.ID == "" {
		_ = m.Ack() // no caller to tell
		return
	}
	w.answer(m, c, nil, &DeadLetterError{Task: c.Task, ID: c.ID, Deliveries: int(md.NumDelivered), Reason: reason, Cause: cause})
}

// onCancel stops a running call whose caller cancelled it, and answers
// the request so that the caller waits for the call's answer. It keeps the
// id for a while, for a delivery that comes after the request.
func (w *worker) onCancel(msg *nats.Msg) {
	id := msg.Header.Get(hdrID)
	if id == "" {
		return
	}
	now := time.Now()
	w.mu.Lock()
	for k, at := range w.cancelled {
		if now.Sub(at) > 2*w.ackWait {
			delete(w.cancelled, k)
		}
	}
	w.cancelled[id] = now
	r := w.running[id]
	w.mu.Unlock()
	if r == nil {
		return
	}
	w.stop(r, byCaller)
	_ = msg.Respond([]byte("stopping"))
}

// wasCancelled reports whether the caller cancelled the call with id
// while it was on its way to this worker.
func (w *worker) wasCancelled(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.cancelled[id]
	return ok
}

// shutdown stops the running calls, hands them back, and waits for every
// goroutine of the worker.
func (w *worker) shutdown() {
	w.mu.Lock()
	w.stopping = true
	rs := make([]*running, 0, len(w.running))
	for _, r := range w.running {
		rs = append(rs, r)
	}
	w.mu.Unlock()
	for _, r := range rs {
		w.stop(r, handBack)
	}
	w.fetchers.Wait() // nothing calls take any more
	close(w.calls)
	w.slots.Wait() // nothing calls answer any more
	close(w.toStore)
	<-w.stored
}
