// Command river measures River, a job queue on PostgreSQL, on the work of
// the cluster's benchmarks: no-op jobs, inserted all at once and worked
// by the client's workers (throughput), and one at a time (round trip).
// bench/river.sh sets PostgreSQL up and runs it beside the cluster's
// benchmarks.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// nopArgs is the job: it does nothing.
type nopArgs struct{}

func (nopArgs) Kind() string { return "nop" }

type nopWorker struct {
	river.WorkerDefaults[nopArgs]
}

func (nopWorker) Work(context.Context, *river.Job[nopArgs]) error { return nil }

func main() {
	dsn := flag.String("dsn", "", "the PostgreSQL database")
	n := flag.Int("n", 20000, "jobs for the throughput run")
	trips := flag.Int("trips", 2000, "jobs for the round-trip run")
	workers := flag.Int("workers", 96, "River's MaxWorkers (the cluster's benchmark has 3 workers of 32 slots)")
	flag.Parse()
	if err := run(*dsn, *n, *trips, *workers); err != nil {
		log.Fatal(err)
	}
}

func run(dsn string, n, trips, maxWorkers int) error {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	driver := riverpgxv5.New(pool)
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		return err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &nopWorker{})
	client, err := river.NewClient(driver, &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: maxWorkers}},
		Workers:           workers,
		FetchCooldown:     river.FetchCooldownMin,
		FetchPollInterval: 100 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	events, cancel := client.SubscribeConfig(&river.SubscribeConfig{ChanSize: n + trips + 1000, Kinds: []river.EventKind{river.EventKindJobCompleted}})
	defer cancel()
	if err := client.Start(ctx); err != nil {
		return err
	}
	defer client.Stop(ctx)

	// Throughput: insert all, in batches, and wait for every completion.
	start := time.Now()
	for i := 0; i < n; i += 1000 {
		batch := make([]river.InsertManyParams, min(1000, n-i))
		for j := range batch {
			batch[j] = river.InsertManyParams{Args: nopArgs{}}
		}
		if _, err := client.InsertMany(ctx, batch); err != nil {
			return err
		}
	}
	for range n {
		<-events
	}
	elapsed := time.Since(start)
	fmt.Printf("river throughput: %d jobs in %v: %.0f jobs/s\n", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())

	// Round trip: one job at a time, from insert to the completion event.
	ds := make([]time.Duration, trips)
	for i := range ds {
		start := time.Now()
		if _, err := client.Insert(ctx, nopArgs{}, nil); err != nil {
			return err
		}
		<-events
		ds[i] = time.Since(start)
	}
	slices.Sort(ds)
	fmt.Printf("river round trip: p50 %d µs, p99 %d µs\n", ds[len(ds)/2].Microseconds(), ds[len(ds)*99/100].Microseconds())
	return nil
}
