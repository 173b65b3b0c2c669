// Command gopingpong is the Go floor under a task's latency: a Go parent
// and a Go child (this program, started again) trade 8 bytes over two
// pipes, with nothing of the library in between. In "reused" mode one
// child answers every trip; in "fresh" mode each trip goes to a child
// started for it, which has waited (settle) before the trip, as a warm
// spare does. Before each trip the parent stays idle for a while, as the
// library's latency benchmarks do. bench/run.sh runs it beside
// bench/c/pingpong.c.
//
//	go run ./bench/gopingpong -mode fresh -trips 100 -idle 1ms
//
// It prints one line in the format of go test -bench, named
// GoPipeTrip/child=MODE/idle=IDLE: the mean trip (ns/op), and the median
// and the 90th percentile (p50-µs, p90-µs).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"time"
)

const childEnv = "GOPINGPONG_CHILD"

func main() {
	if os.Getenv(childEnv) != "" {
		child()
		return
	}
	mode := flag.String("mode", "reused", "reused: one child for every trip; fresh: a child started for each trip")
	trips := flag.Int("trips", 200, "round trips")
	idle := flag.Duration("idle", time.Millisecond, "how long the parent is idle before each trip")
	settle := flag.Duration("settle", 3*time.Millisecond, "fresh mode: how long a new child waits before its trip")
	flag.Parse()
	if *trips < 1 || (*mode != "reused" && *mode != "fresh") {
		flag.Usage()
		os.Exit(2)
	}
	times, err := run(*mode, *trips, *idle, *settle)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gopingpong:", err)
		os.Exit(1)
	}
	var total time.Duration
	for _, d := range times {
		total += d
	}
	slices.Sort(times)
	us := func(q int) float64 { return float64(times[(len(times)-1)*q/100]) / float64(time.Microsecond) }
	fmt.Printf("BenchmarkGoPipeTrip/child=%s/idle=%v\t%d\t%d ns/op\t%.1f p50-µs\t%.1f p90-µs\n",
		*mode, *idle, *trips, total.Nanoseconds()/int64(*trips), us(50), us(90))
}

// child answers each 8 bytes on fd 3 with the same 8 bytes on fd 4, until
// fd 3 ends. The fds are blocking: a read sleeps in the kernel, as a
// plain program's would.
func child() {
	in, out := os.NewFile(3, "in"), os.NewFile(4, "out")
	buf := make([]byte, 8)
	for {
		if _, err := in.Read(buf); err != nil {
			return
		}
		if _, err := out.Write(buf); err != nil {
			return
		}
	}
}

type peer struct {
	cmd  *exec.Cmd
	w, r *os.File
}

func start() (*peer, error) {
	childIn, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	r, childOut, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.ExtraFiles = []*os.File{childIn, childOut}
	cmd.Stderr = os.Stderr
	err = cmd.Start()
	childIn.Close()
	childOut.Close()
	if err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	return &peer{cmd, w, r}, nil
}

func (p *peer) trip() (time.Duration, error) {
	buf := make([]byte, 8)
	t0 := time.Now()
	if _, err := p.w.Write(buf); err != nil {
		return 0, err
	}
	if _, err := p.r.Read(buf); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

func (p *peer) stop() error {
	p.w.Close()
	err := p.cmd.Wait()
	p.r.Close()
	return err
}

func run(mode string, trips int, idle, settle time.Duration) ([]time.Duration, error) {
	var times []time.Duration
	var p *peer
	var err error
	if mode == "reused" {
		if p, err = start(); err != nil {
			return nil, err
		}
		if _, err := p.trip(); err != nil { // the child is up
			return nil, err
		}
	}
	for range trips {
		if mode == "fresh" {
			if p, err = start(); err != nil {
				return nil, err
			}
			time.Sleep(settle)
		}
		time.Sleep(idle)
		d, err := p.trip()
		if err != nil {
			return nil, err
		}
		times = append(times, d)
		if mode == "fresh" {
			if err := p.stop(); err != nil {
				return nil, err
			}
		}
	}
	if mode == "reused" {
		if err := p.stop(); err != nil {
			return nil, err
		}
	}
	return times, nil
}
