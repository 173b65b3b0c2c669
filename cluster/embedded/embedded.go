// Package embedded runs a NATS server with JetStream inside the program:
// the one-machine default of package cluster, and the servers of test
// clusters.
//
// # Use
//
//	node, err := embedded.Start(ctx, dir)
//	if err != nil { ... }
//	defer node.Shutdown()
//	c, err := cluster.New(ctx, node.Conn(), cluster.Config{})
//
// The server keeps its JetStream store in dir: a node started again on
// the same dir finds every stream, queued message and consumer it had.
// It has no TCP listener unless [Listen] asks for one, and then it binds
// to the loopback address unless the address names another host. Workers
// in other processes connect to [Node.URL] with nats.Connect.
//
// Several nodes form a JetStream cluster with [Cluster]; each needs a
// [Name] of its own and a store of its own.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Node is one running server and a client connection to it. Get one from
// [Start]; end it with [Node.Shutdown]. Its methods are safe for
// concurrent use.
type Node struct {
	srv *server.Server
	nc  *nats.Conn
}

// Option configures a node.
type Option interface{ apply(*config) error }

type config struct {
	server.Options
	log hclog.Logger
}

type optionFunc func(*config) error

func (f optionFunc) apply(c *config) error { return f(c) }

// Logger sends the server's log to l; the default is silent.
func Logger(l hclog.Logger) Option {
	return optionFunc(func(c *config) error {
		c.log = l
		return nil
	})
}

// Listen serves NATS clients over TCP on addr, such as "127.0.0.1:4222",
// or ":0" for a port that the system chooses. An address without a host
// binds to 127.0.0.1: a node is reachable from other machines only when
// addr names a host, such as "0.0.0.0:4222". Without Listen the node has
// no TCP listener at all and only [Node.Conn] reaches it.
func Listen(addr string) Option {
	return optionFunc(func(o *config) error {
		host, port, err := hostPort(addr, "Listen")
		if err != nil {
			return err
		}
		o.Host, o.Port, o.DontListen = host, port, false
		return nil
	})
}

// Name sets the node's server name. Nodes of one cluster need different
// names; the default is one the server makes up.
func Name(name string) Option {
	return optionFunc(func(o *config) error {
		o.ServerName = name
		return nil
	})
}

// Cluster makes the node one of a JetStream cluster called name: it
// listens for its peers on addr (a host-less address binds to 127.0.0.1,
// as with [Listen]) and connects to the peers at routes, such as
// "nats://127.0.0.1:6223". Every node needs routes (a node's list may hold
// its own address, which it skips), so give each the addresses of all.
// JetStream in a cluster of three or more nodes keeps a replicated stream
// available while a minority of them is down.
func Cluster(name, addr string, routes ...string) Option {
	return optionFunc(func(o *config) error {
		host, port, err := hostPort(addr, "Cluster")
		if err != nil {
			return err
		}
		o.Cluster.Name, o.Cluster.Host, o.Cluster.Port = name, host, port
		for _, r := range routes {
			u, err := url.Parse(r)
			if err != nil || u.Host == "" {
				return fmt.Errorf("embedded: Cluster: route %q is not a URL such as nats://127.0.0.1:6222", r)
			}
			o.Routes = append(o.Routes, u)
		}
		return nil
	})
}

// MaxPayload sets the largest message the node accepts, in bytes; the
// server's default is 1 MiB. A call or a result must fit in one message.
func MaxPayload(n int32) Option {
	return optionFunc(func(o *config) error {
		if n <= 0 {
			return fmt.Errorf("embedded: MaxPayload(%d): give a positive size in bytes", n)
		}
		o.MaxPayload = n
		return nil
	})
}

// ServerOptions lets f change the server's options last, for what no
// other Option covers: TLS, accounts and users, limits. See the
// nats-server documentation of server.Options.
func ServerOptions(f func(*server.Options)) Option {
	return optionFunc(func(o *config) error {
		f(&o.Options)
		return nil
	})
}

// Start starts a server with JetStream whose store is dir, and connects
// to it in-process. ctx bounds the start only: the node runs until
// Shutdown. Start fails when dir is empty, an option is refused, or the
// server is not ready before ctx ends.
func Start(ctx context.Context, dir string, opts ...Option) (*Node, error) {
	if dir == "" {
		return nil, errors.New("embedded: Start with an empty store directory; give the directory that keeps the node's streams")
	}
	cfg := &config{Options: server.Options{
		JetStream:  true,
		StoreDir:   dir,
		DontListen: true,
		NoSigs:     true,
		NoLog:      true,
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
	}}
	for _, opt := range opts {
		if err := opt.apply(cfg); err != nil {
			return nil, err
		}
	}
	if cfg.log == nil {
		cfg.log = hclog.NewNullLogger()
	}
	srv, err := server.NewServer(&cfg.Options)
	if err != nil {
		return nil, fmt.Errorf("embedded: making the server: %w", err)
	}
	log := &logger{log: cfg.log}
	srv.SetLogger(log, cfg.log.IsDebug(), cfg.log.IsTrace())
	go srv.Start()
	if err := waitReady(ctx, srv, log); err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, err
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("embedded"), nats.MaxReconnects(-1))
	if err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded: connecting in-process: %w", err)
	}
	return &Node{srv: srv, nc: nc}, nil
}

// startTimeout bounds the start of a node whose context has no deadline.
const startTimeout = 30 * time.Second

// waitReady waits until srv accepts connections, and fails when the server
// gave up, ctx ended, or startTimeout passed.
func waitReady(ctx context.Context, srv *server.Server, log *logger) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		if err := log.fatal(); err != nil {
			return fmt.Errorf("embedded: the server did not start: %w", err)
		}
		if srv.ReadyForConnections(20 * time.Millisecond) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("embedded: the server was not ready (is the address free?): %w", err)
		}
	}
}

// logger keeps the server's fatal error, and passes its log on to an
// hclog.Logger.
type logger struct {
	log hclog.Logger
	mu  sync.Mutex
	err error
}

func (l *logger) fatal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *logger) Fatalf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = fmt.Errorf(format, v...)
	}
	l.log.Error(fmt.Sprintf(format, v...))
}

func (l *logger) Noticef(format string, v ...any) { l.log.Info(fmt.Sprintf(format, v...)) }
func (l *logger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *logger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *logger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *logger) Tracef(format string, v ...any)  { l.log.Trace(fmt.Sprintf(format, v...)) }

// Conn returns the node's in-process client connection. It is closed by
// Shutdown; do not close it yourself.
func (n *Node) Conn() *nats.Conn { return n.nc }

// URL returns the address that clients connect to, such as
// nats://127.0.0.1:4222, or "" when the node has no listener (see
// [Listen]).
func (n *Node) URL() string {
	if n.srv.Addr() == nil {
		return ""
	}
	return n.srv.ClientURL()
}

// ClusterURL returns the address that peers connect to, for their
// [Cluster] routes, or "" when the node is not in a cluster.
func (n *Node) ClusterURL() string {
	a := n.srv.ClusterAddr()
	if a == nil {
		return ""
	}
	return "nats://" + net.JoinHostPort(a.IP.String(), strconv.Itoa(a.Port))
}

// Server returns the nats-server itself, for what this package does not
// cover (monitoring, JetStream state).
func (n *Node) Server() *server.Server { return n.srv }

// Shutdown closes the node's connection, stops the server, and returns
// once the server's goroutines and files are gone. Calling it again does
// nothing.
func (n *Node) Shutdown() {
	n.nc.Close()
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// hostPort splits addr, with 127.0.0.1 for an empty host.
func hostPort(addr, what string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("embedded: %s(%q): not host:port (%v); give an address such as 127.0.0.1:4222 or :0", what, addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("embedded: %s(%q): the port is not a number from 0 to 65535", what, addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, port, nil
}
