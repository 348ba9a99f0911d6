package keymutex

import (
	"sync"
	"testing"
)

func TestLockSerialisesOneKeyAndForgetsIt(t *testing.T) {
	var k Map
	var wg sync.WaitGroup
	counts := map[string]*int{"a": new(int), "b": new(int)} // read-only map
	for i := range 200 {
		key := []string{"a", "b"}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := k.Lock(key)
			defer unlock()
			*counts[key]++ // the race detector fails this if two hold one key
		}()
	}
	wg.Wait()
	if *counts["a"] != 100 || *counts["b"] != 100 {
		t.Fatalf("counts a=%d b=%d, want 100 each", *counts["a"], *counts["b"])
	}
	if n := k.Len(); n != 0 {
		t.Fatalf("%d keys kept after every unlock, want 0", n)
	}
}
