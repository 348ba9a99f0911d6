package container

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/driver"
)

// BenchmarkStart measures a container's launch, from Start (created, its
// layers cached) until the runtime reports it running, with real runc and
// crun. Besides the mean it reports the median, which is steadier on a
// busy machine:
//
//	go test -run '^$' -bench Start -benchtime 20x ./driver/container/
func BenchmarkStart(b *testing.B) {
	for _, rt := range []string{"runc", "crun"} {
		b.Run(rt, func(b *testing.B) {
			needRuntime(b, rt)
			benchmarkStart(b, rt)
		})
	}
}

func benchmarkStart(b *testing.B, rt string) {
	ctx := context.Background()
	blobs := &blobMap{}
	d := newRuntimeTestDriver(b, b.TempDir(), blobs, rt)
	image := busyboxImage(b, blobs)
	var runs []time.Duration
	for b.Loop() {
		b.StopTimer()
		spec := driver.Spec{ID: uniqueID(b), Image: image, Command: []string{"sleep", "1000"}}
		if err := d.Create(ctx, spec); err != nil {
			b.Fatalf("Create: %v", err)
		}
		b.StartTimer()
		start := time.Now()
		if err := d.Start(ctx, spec.ID); err != nil {
			b.Fatalf("Start: %v", err)
		}
		runs = append(runs, time.Since(start))
		b.StopTimer()
		if err := d.Delete(ctx, spec.ID); err != nil {
			b.Fatalf("Delete: %v", err)
		}
		b.StartTimer()
	}
	slices.Sort(runs)
	b.ReportMetric(float64(runs[len(runs)/2].Microseconds())/1000, "ms-median")
}
