package wire

import (
	"bytes"
	"testing"
	"unsafe"
)

func TestDecodeBatchIntoInPlace(t *testing.T) {
	tasks := []Task{{ID: 1, Func: "square", Input: []byte("7")}, {ID: 2, Func: "square", Input: []byte("8")}, {ID: 3, Func: "echo"}}
	p := AppendBatch(nil, tasks)
	got, err := DecodeBatchInto(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Func != "square" || got[1].Func != "square" || got[2].Func != "echo" || got[2].Input != nil {
		t.Fatalf("decoded %+v", got)
	}
	if unsafe.StringData(got[0].Func) != unsafe.StringData(got[1].Func) {
		t.Error("tasks of one function should share the name's string")
	}
	// In place: the inputs are the payload's bytes.
	got[0].Input[0] = 'x'
	if !bytes.Contains(p, []byte("x")) {
		t.Error("DecodeBatchInto copied an input")
	}
	if cap(got[0].Input) != 1 {
		t.Errorf("an in-place input has capacity %d; appending to it would overwrite the next task", cap(got[0].Input))
	}
}

func TestDecodeResultsOutputs(t *testing.T) {
	big := bytes.Repeat([]byte("b"), smallOutput+1)
	rs := []Result{{ID: 1, Status: StatusOK, Output: []byte("aa")}, {ID: 2, Status: StatusOK, Output: []byte("cc"), Log: []byte("log")}, {ID: 3, Status: StatusOK, Output: big}, {ID: 4, Status: StatusError}}
	p := AppendResults(nil, rs)
	got, err := DecodeResults(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rs {
		if !bytes.Equal(got[i].Output, rs[i].Output) || !bytes.Equal(got[i].Log, rs[i].Log) {
			t.Fatalf("result %d: got %q/%q", i, got[i].Output, got[i].Log)
		}
	}
	if got[3].Output != nil {
		t.Error("an empty output decodes as nil")
	}
	// Appending to one output must not overwrite the next in the chunk.
	_ = append(got[0].Output, 'Z')
	if string(got[1].Output) != "cc" {
		t.Errorf("appending to an output overwrote its neighbour: %q", got[1].Output)
	}
	// Nothing aliases the payload.
	clear(p)
	if string(got[0].Output) != "aa" || !bytes.Equal(got[2].Output, big) || string(got[1].Log) != "log" {
		t.Error("a decoded output aliases the payload")
	}
}

func TestDecodeBatchIntoReuses(t *testing.T) {
	big := AppendBatch(nil, []Task{{ID: 1, Func: "a", Input: []byte("x"), MemoryLimit: 9}, {ID: 2, Func: "a"}, {ID: 3, Func: "b"}})
	small := AppendBatch(nil, []Task{{ID: 4, Func: "c"}})
	first, err := DecodeBatchInto(nil, big)
	if err != nil || len(first) != 3 {
		t.Fatalf("decode: %v, %d tasks", err, len(first))
	}
	second, err := DecodeBatchInto(first[:0], small)
	if err != nil || len(second) != 1 {
		t.Fatalf("decode: %v, %d tasks", err, len(second))
	}
	if &second[0] != &first[0] {
		t.Error("the slice's storage was not reused")
	}
	if second[0].ID != 4 || second[0].Func != "c" || second[0].Input != nil || second[0].MemoryLimit != 0 {
		t.Errorf("a reused task keeps fields of the last batch: %+v", second[0])
	}
	if _, err := DecodeBatchInto(first[:0], []byte{0x80}); err == nil {
		t.Error("a malformed batch decoded")
	}
}
