package wazero

import "fmt"

// scanCode decodes every function body of the code section and fails on an
// instruction that changes state outside linear memory and globals, which
// a reset could not undo: table.set, table.grow, table.init, table.copy,
// table.fill, elem.drop and data.drop. Reading a table (table.get,
// table.size, call_indirect) is fine.
func scanCode(s *reader) error {
	n := s.u32()
	for i := uint32(0); i < n && s.err == nil; i++ {
		size := s.u32()
		if s.err != nil || uint64(len(s.b)-s.off) < uint64(size) {
			return fmt.Errorf("code section: function %d runs past the end", i)
		}
		body := &reader{b: s.b[:s.off+int(size)], off: s.off}
		s.off += int(size)
		for locals := body.u32(); locals > 0 && body.err == nil; locals-- {
			body.u32()
			body.byte()
		}
		for body.off < len(body.b) && body.err == nil {
			if err := scanInstr(body); err != nil {
				return fmt.Errorf("function %d: %w", i, err)
			}
		}
		if body.err != nil {
			return fmt.Errorf("code section: function %d: %w", i, body.err)
		}
	}
	return s.done("code")
}

// scanInstr reads one instruction and its immediates.
func scanInstr(r *reader) error {
	op := r.byte()
	switch {
	case op == 0x02 || op == 0x03 || op == 0x04: // block, loop, if: a block type
		r.blockType()
	case op == 0x0C || op == 0x0D || op == 0x10 || op == 0x12: // br, br_if, call, return_call
		r.u32()
	case op == 0x0E: // br_table
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			r.u32()
		}
		r.u32()
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		r.u32()
		r.u32()
	case op == 0x1C: // select with types
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			r.byte()
		}
	case op >= 0x20 && op <= 0x24: // local.*, global.*
		r.u32()
	case op == 0x25: // table.get
		r.u32()
	case op == 0x26:
		return fmt.Errorf("table.set changes a table")
	case op >= 0x28 && op <= 0x3E: // loads and stores
		r.memarg()
	case op == 0x3F || op == 0x40: // memory.size, memory.grow
		r.u32()
	case op == 0x41 || op == 0x42: // i32.const, i64.const
		r.leb()
	case op == 0x43:
		r.skip(4)
	case op == 0x44:
		r.skip(8)
	case op == 0xD0: // ref.null
		r.byte()
	case op == 0xD2: // ref.func
		r.u32()
	case op == 0xFC:
		return scanFC(r)
	case op == 0xFD:
		return scanSIMD(r)
	case op <= 0x01 || op == 0x05 || op == 0x0B || op == 0x0F || op == 0x1A || op == 0x1B ||
		(op >= 0x45 && op <= 0xC4) || op == 0xD1: // no immediates
	default:
		return fmt.Errorf("unknown instruction 0x%x", op)
	}
	return nil
}

// scanFC reads an instruction of the 0xFC prefix: saturating conversions,
// bulk memory and tables.
func scanFC(r *reader) error {
	switch sub := r.u32(); sub {
	case 0, 1, 2, 3, 4, 5, 6, 7: // trunc_sat
	case 8: // memory.init: a data segment, a memory
		r.u32()
		r.u32()
	case 10: // memory.copy
		r.u32()
		r.u32()
	case 11: // memory.fill
		r.u32()
	case 16: // table.size
		r.u32()
	case 9:
		return fmt.Errorf("data.drop changes the instance's data segments")
	case 12, 13, 14, 15, 17:
		return fmt.Errorf("instruction 0xfc %d changes a table or its segments", sub)
	default:
		return fmt.Errorf("unknown instruction 0xfc %d", sub)
	}
	return nil
}

// scanSIMD reads an instruction of the 0xFD prefix (fixed-width SIMD).
func scanSIMD(r *reader) error {
	switch sub := r.u32(); {
	case sub <= 11 || sub == 92 || sub == 93: // loads and stores
		r.memarg()
	case sub >= 84 && sub <= 91: // lane loads and stores
		r.memarg()
		r.byte()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		r.skip(16)
	case sub >= 21 && sub <= 34: // lane extract and replace
		r.byte()
	case sub <= 275:
	default:
		return fmt.Errorf("unknown instruction 0xfd %d", sub)
	}
	return nil
}

// blockType reads a block's type: empty, a value type, or a type index
// (a signed 33-bit number).
func (r *reader) blockType() {
	c := r.byte()
	if c == 0x40 || c&0x80 == 0 && c >= 0x6F {
		return
	}
	if c&0x80 != 0 {
		r.leb()
	}
}

// memarg reads a load's or a store's alignment and offset; with the
// multi-memory bit set in the alignment a memory index follows.
func (r *reader) memarg() {
	align := r.u32()
	if align&0x40 != 0 {
		r.u32()
	}
	r.leb()
}
