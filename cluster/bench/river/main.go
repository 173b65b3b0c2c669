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
	"github.com/riverqueue/river/rivertype"
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
	trips := flag.Int("trips", 100, "jobs for the round-trip run")
	workers := flag.Int("workers", 96, "River's MaxWorkers (the cluster's benchmark has 3 workers of 32 slots)")
	poll := flag.Duration("poll", 100*time.Millisecond, "River's FetchPollInterval")
	flag.Parse()
	if err := run(*dsn, *n, *trips, *workers, *poll); err != nil {
		log.Fatal(err)
	}
}

func run(dsn string, n, trips, maxWorkers int, poll time.Duration) error {
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
		FetchPollInterval: poll,
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

	// Round trip: one job at a time, from the insert to the job's
	// completed row (read every 100 µs), and to its completion event,
	// which River sends in batches.
	rows := make([]time.Duration, trips)
	evs := make([]time.Duration, trips)
	for i := range rows {
		start := time.Now()
		res, err := client.Insert(ctx, nopArgs{}, nil)
		if err != nil {
			return err
		}
		for {
			job, err := client.JobGet(ctx, res.Job.ID)
			if err != nil {
				return err
			}
			if job.State == rivertype.JobStateCompleted {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		rows[i] = time.Since(start)
		<-events
		evs[i] = time.Since(start)
	}
	slices.Sort(rows)
	slices.Sort(evs)
	fmt.Printf("river round trip to the completed row: p50 %d µs, p99 %d µs; to the completion event: p50 %d µs\n",
		rows[len(rows)/2].Microseconds(), rows[len(rows)*99/100].Microseconds(), evs[len(evs)/2].Microseconds())
	return nil
}
