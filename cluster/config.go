package cluster

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config holds the settings of a Client, and of the streams and the
// consumer that the first Client or worker creates. The zero Config
// means the defaults below. New never changes the caller's Config.
type Config struct {
	// Prefix starts every subject and stream name: the calls go to
	// "<prefix>.calls" in the stream "<PREFIX>_CALLS", the results to
	// "<prefix>.results.>" in "<PREFIX>_RESULTS", the dead letters to
	// "<prefix>.dead" in "<PREFIX>_DEAD". Clients and workers that share
	// a prefix share the work. The default is "procrastinate".
	Prefix string
	// AckWait is how long a worker may go silent before its calls are
	// given to another: a worker renews the lease of a running call four
	// times within AckWait, and stops the call itself when it could not
	// renew for AckWait. The default is 30 seconds.
	AckWait time.Duration
	// MaxDeliver is how many times a call may be delivered to a worker
	// before it goes to the dead-letter stream. The default is 5.
	MaxDeliver int
	// ResultTTL is how long a result is kept in the results stream, where
	// a Client that restarted finds it by its key (see Fetch). The
	// default is 24 hours.
	ResultTTL time.Duration
	// DeadLetterTTL is how long a dead letter is kept. The default is 7
	// days.
	DeadLetterTTL time.Duration
	// Replicas is how many servers of a cluster keep each stream; 3 keeps
	// the streams available while one server is down. The default is 1.
	Replicas int
	// Memory keeps the streams in memory instead of files: faster, and
	// lost when the server stops.
	Memory bool
	// PublishTimeout is how long a call waits for the server to confirm
	// that it stored it; past it the call fails. The default is 10
	// seconds.
	PublishTimeout time.Duration
	// CancelWait is how long a call whose context ended waits for the
	// worker that runs it to say so; without an answer the call fails as
	// never started. The default is 2 seconds.
	CancelWait time.Duration
	// Logger receives the client's log; the default is silent.
	Logger hclog.Logger
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() (Config, error) {
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 5
	}
	if c.ResultTTL == 0 {
		c.ResultTTL = 24 * time.Hour
	}
	if c.DeadLetterTTL == 0 {
		c.DeadLetterTTL = 7 * 24 * time.Hour
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 10 * time.Second
	}
	if c.CancelWait == 0 {
		c.CancelWait = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	switch {
	case c.AckWait < 10*time.Millisecond:
		return c, fmt.Errorf("cluster: Config.AckWait %v is too short; give at least 10ms (seconds in practice)", c.AckWait)
	case c.MaxDeliver < 1:
		return c, fmt.Errorf("cluster: Config.MaxDeliver %d: give 1 or more", c.MaxDeliver)
	case c.ResultTTL < 0, c.DeadLetterTTL < 0, c.PublishTimeout < 0, c.CancelWait < 0:
		return c, errors.New("cluster: Config: a negative duration; give a positive one, or zero for the default")
	case c.Replicas < 1 || c.Replicas > 5:
		return c, fmt.Errorf("cluster: Config.Replicas %d: give 1 to 5", c.Replicas)
	}
	return c, nil
}

// ServeOption configures a worker (see Serve).
type ServeOption interface{ apply(*serveConfig) }

type serveOptionFunc func(*serveConfig)

func (f serveOptionFunc) apply(c *serveConfig) { f(c) }

type serveConfig struct {
	cfg          Config
	slots        int
	name         string
	unknownDelay time.Duration
	maxCall      int
	fetchWait    time.Duration
	runToEnd     bool
}

// Slots sets how many calls the worker runs at once: it takes a call from
// the stream only when one of its n slots is free. A slot is free again
// once its call's answer is on its way to the caller; the call is acked
// when the caller confirms it has the answer, or the server that it
// stored it. Give the number of
// tasks its dispatcher runs at once (n for strategy.Throttled(n), times
// the Pipeline depth of reused children). The default is 3 times the
// number of CPUs, the limit of strategy.Default().
func Slots(n int) ServeOption {
	return serveOptionFunc(func(c *serveConfig) { c.slots = n })
}

// WorkerName sets the name that the worker's answers and errors carry.
// The default is the host name and the process id.
func WorkerName(name string) ServeOption {
	return serveOptionFunc(func(c *serveConfig) { c.name = name })
}

// WithConfig sets the prefix, the logger, and the settings of the streams
// and the consumer that the worker creates when no Client created them
// first (see Config). Workers and clients must share the Prefix.
func WithConfig(cfg Config) ServeOption {
	return serveOptionFunc(func(c *serveConfig) { c.cfg = cfg })
}

// UnknownTaskDelay sets how long a call whose task the worker does not
// define waits before it is offered to a worker again. The default is one
// second.
func UnknownTaskDelay(d time.Duration) ServeOption {
	return serveOptionFunc(func(c *serveConfig) { c.unknownDelay = d })
}

// MaxCallSize sets the largest argument, in bytes, that the worker runs;
// a larger one goes to the dead letters. The default is the server's
// maximum message size.
func MaxCallSize(n int) ServeOption {
	return serveOptionFunc(func(c *serveConfig) { c.maxCall = n })
}

// RunToEnd lets the calls that their caller cannot cancel (no context,
// deadline or activity timeout) run to their end on the worker: they go to
// its dispatcher without a context, and the dispatcher may then pipeline
// them to reused children (strategy.Pipeline), which makes short calls
// several times cheaper. In exchange such a call is not stopped when the
// worker cannot renew its lease (it finishes; another worker may run it
// too, and the first answer to reach the caller resolves its future),
// nor when the worker shuts down (Serve waits for it and sends its
// answer). Without RunToEnd every call
// can be stopped; the dispatcher pipelines such calls too.
func RunToEnd() ServeOption {
	return serveOptionFunc(func(c *serveConfig) { c.runToEnd = true })
}

func newServeConfig(opts []ServeOption) (serveConfig, error) {
	sc := serveConfig{
		slots:        3 * runtime.NumCPU(),
		unknownDelay: time.Second,
		fetchWait:    5 * time.Second,
	}
	for _, o := range opts {
		o.apply(&sc)
	}
	var err error
	if sc.cfg, err = sc.cfg.withDefaults(); err != nil {
		return sc, err
	}
	if sc.slots < 1 {
		return sc, fmt.Errorf("cluster: Slots(%d): give 1 or more", sc.slots)
	}
	if sc.unknownDelay < 0 || sc.maxCall < 0 {
		return sc, errors.New("cluster: a negative UnknownTaskDelay or MaxCallSize; give a positive one")
	}
	return sc, nil
}

// setUp makes the streams and the consumer when they are missing. With
// update, it changes an existing consumer's ack wait to cfg's. It tries
// again while JetStream is not ready (a cluster electing its leaders)
// until ctx ends.
func setUp(ctx context.Context, js jetstream.JetStream, n names, cfg Config, update bool) (jetstream.Consumer, error) {
	storage := jetstream.FileStorage
	if cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	streams := []jetstream.StreamConfig{{
		Name:        n.callStream,
		Subjects:    []string{n.calls},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     storage,
		Replicas:    cfg.Replicas,
		Description: "procrastinate: calls waiting for a worker",
	}, {
		Name:        n.resultStream,
		Subjects:    []string{n.results + ".>"},
		Storage:     storage,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.ResultTTL,
		AllowDirect: true,
		Description: "procrastinate: results, by call id and by key",
	}, {
		Name:        n.deadStream,
		Subjects:    []string{n.dead},
		Storage:     storage,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.DeadLetterTTL,
		Description: "procrastinate: calls that will not run, with the reason",
	}}
	cc := jetstream.ConsumerConfig{
		Durable:       n.consumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1, // workers move a call to the dead letters; see Config.MaxDeliver
		MaxAckPending: -1, // workers bound themselves by their slots
		MaxWaiting:    4096,
		Replicas:      cfg.Replicas,
		Description:   "procrastinate: the workers",
	}
	var cons jetstream.Consumer
	try := func() error {
		// A request that no leader hears gets no answer: each try has a
		// time of its own, so that the next one can find a new leader.
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		for _, sc := range streams {
			if _, err := js.CreateStream(ctx, sc); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return fmt.Errorf("making the stream %s: %w", sc.Name, err)
			}
		}
		var err error
		if update {
			cons, err = js.CreateOrUpdateConsumer(ctx, n.callStream, cc)
		} else {
			cons, err = js.Consumer(ctx, n.callStream, n.consumer)
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				cons, err = js.CreateConsumer(ctx, n.callStream, cc)
				if errors.Is(err, jetstream.ErrConsumerExists) {
					cons, err = js.Consumer(ctx, n.callStream, n.consumer)
				}
			}
		}
		if err != nil {
			return fmt.Errorf("making the consumer %s: %w", n.consumer, err)
		}
		return nil
	}
	delay := 50 * time.Millisecond
	for {
		err := try()
		if err == nil {
			return cons, nil
		}
		if !transient(err) {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cluster: JetStream was not ready before the context ended: %w (last: %v)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// transient reports whether err may go away by itself: JetStream not up
// yet, or a cluster without a leader for the moment.
func transient(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		return api.Code == 503 || api.ErrorCode == jetstream.JSErrCodeStreamNotFound
	}
	return errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout)
}
