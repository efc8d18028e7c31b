// Protocol Buffers' wire format (https://protobuf.dev/programming-guides/encoding/), as much as the
// channel's messages use: varints (int32, uint32, int64 as a decimal string, bool) and
// length-delimited fields (strings, messages, map entries). The channel's messages are few and
// small; a generic runtime (protobufjs with its .proto parser) cost the components about 3.5 MiB
// of memory each for them. The codecs are in codecs.ts; test/channel/codecs.test.ts checks them
// against protobufjs reading the .proto files, and wire.test.ts against hand-built bytes.

export enum WireType {
  Varint = 0,
  Fixed64 = 1,
  Bytes = 2,
  Fixed32 = 5,
}

/** Encodes into one growing buffer; a message field is written in place and its length put before it. */
export class Writer {
  private buf = Buffer.allocUnsafe(256);
  private pos = 0;

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  /** A non-negative safe integer. */
  varint(n: number): void {
    this.room(10);
    while (n > 0x7f) {
      this.buf[this.pos++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }

  tag(field: number, type: WireType): void {
    this.varint(field * 8 + type);
  }

  /** Omitted when empty (proto3's default), unless `always`. */
  string(field: number, value: string | undefined | null, always = false): void {
    if (value === undefined || value === null || (value === '' && !always)) return;
    this.tag(field, WireType.Bytes);
    const length = Buffer.byteLength(value);
    this.varint(length);
    this.room(length);
    this.pos += this.buf.write(value, this.pos, 'utf8');
  }

  bool(field: number, value: boolean | undefined): void {
    if (!value) return;
    this.tag(field, WireType.Varint);
    this.varint(1);
  }

  uint32(field: number, value: number | undefined): void {
    if (!value) return;
    this.tag(field, WireType.Varint);
    this.varint(value >>> 0);
  }

  /** Negative values as ten bytes, sign-extended to 64 bits, as the format says. */
  int32(field: number, value: number | undefined): void {
    if (!value) return;
    this.tag(field, WireType.Varint);
    if (value > 0) this.varint(value | 0);
    else this.varint64(BigInt.asUintN(64, BigInt(value | 0)));
  }

  /** int64 from a decimal string or a number; zero omitted unless `always` (proto3 `optional`). */
  int64(field: number, value: string | number | undefined | null, always = false): void {
    if (value === undefined || value === null) return;
    const n = Number(value);
    if (Number.isSafeInteger(n) && n >= 0) {
      if (n === 0 && !always) return;
      this.tag(field, WireType.Varint);
      this.varint(n);
      return;
    }
    const big = BigInt(value);
    if (big === 0n && !always) return;
    this.tag(field, WireType.Varint);
    this.varint64(BigInt.asUintN(64, big));
  }

  /** A message field: written when the value is there (even empty), omitted when null or undefined. */
  message<T>(field: number, value: T | undefined | null, write: (w: Writer, value: T) => void): void {
    if (value === undefined || value === null) return;
    this.tag(field, WireType.Bytes);
    // One byte kept for the length; moved along when the message needs more.
    this.room(1);
    const start = ++this.pos;
    write(this, value);
    const length = this.pos - start;
    if (length < 0x80) {
      this.buf[start - 1] = length;
      return;
    }
    const size = varintSize(length);
    this.room(size - 1);
    this.buf.copyWithin(start + size - 1, start, this.pos);
    this.pos = start - 1;
    this.varint(length);
    this.pos += length;
  }

  private varint64(v: bigint): void {
    this.room(10);
    while (v > 0x7fn) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
}

function varintSize(n: number): number {
  let size = 1;
  while (n > 0x7f) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** Decodes one message's bytes; fields it does not know are skipped, as a newer peer may send them. */
export class Reader {
  private pos: number;

  constructor(
    private readonly buf: Buffer,
    start = 0,
    private readonly end = buf.length,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** The next field: its number and wire type. */
  tag(): [number, WireType] {
    const t = this.uint32();
    return [t >>> 3, (t & 7) as WireType];
  }

  uint32(): number {
    const v = this.varint();
    return typeof v === 'number' ? v >>> 0 : Number(BigInt.asUintN(32, v));
  }

  int32(): number {
    const v = this.varint();
    return typeof v === 'number' ? v | 0 : Number(BigInt.asIntN(32, v));
  }

  /** int64 as a decimal string, as proto-loader's `longs: String` gave it. */
  int64(): string {
    const v = this.varint();
    return typeof v === 'number' ? String(v) : String(BigInt.asIntN(64, v));
  }

  bool(): boolean {
    const v = this.varint();
    return v !== 0 && v !== 0n;
  }

  string(): string {
    const [start, end] = this.span();
    return this.buf.toString('utf8', start, end);
  }

  /** A message field's bytes, for its own Reader. */
  message<T>(read: (r: Reader) => T): T {
    const [start, end] = this.span();
    return read(new Reader(this.buf, start, end));
  }

  skip(type: WireType): void {
    if (type === WireType.Varint) this.varint();
    else if (type === WireType.Bytes) this.span();
    else if (type === WireType.Fixed64) this.advance(8);
    else if (type === WireType.Fixed32) this.advance(4);
    else throw new Error(`protobuf: wire type ${type as number} is not supported`);
  }

  private span(): [number, number] {
    const length = this.uint32();
    const start = this.pos;
    this.advance(length);
    return [start, this.pos];
  }

  private advance(n: number): void {
    if (this.pos + n > this.end) throw new Error('protobuf: the message is truncated');
    this.pos += n;
  }

  /** A number while it fits 28 bits (tags, lengths, most values), else a bigint. */
  private varint(): number | bigint {
    let result = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      const byte = this.byte();
      result |= (byte & 0x7f) << shift;
      if (byte < 0x80) return result;
    }
    let big = BigInt(result);
    for (let shift = 28n; shift < 70n; shift += 7n) {
      const byte = this.byte();
      big |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return big;
    }
    throw new Error('protobuf: a varint longer than 10 bytes');
  }

  private byte(): number {
    if (this.pos >= this.end) throw new Error('protobuf: the message is truncated');
    return this.buf[this.pos++]!;
  }
}

/** Reads a message's fields with `field` until the end; a field it returns false for is skipped. */
export function readFields(r: Reader, field: (n: number, type: WireType) => boolean): void {
  while (!r.done) {
    const [n, type] = r.tag();
    if (!field(n, type)) r.skip(type);
  }
}
