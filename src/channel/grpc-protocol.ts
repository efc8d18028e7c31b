// What both ends of the channel's gRPC share of the protocol
// (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md): message framing and its size
// limit, grpc-message's percent-encoding, grpc-timeout, and the status an HTTP answer without one
// stands for.
import { status } from './status.js';

/** grpc-go's and grpc-js's default limit for a received message. */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** One gRPC message on the wire: flag 0 (not compressed), its length, the bytes. */
export function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** grpc-message: UTF-8, with every byte outside printable ASCII, and '%', as %XX (the protocol's rule; grpc-js decodes no more). */
export function percentEncode(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const TIMEOUT_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };

/** grpc-timeout: up to 8 digits and a unit. undefined: none; null: malformed. */
export function parseTimeout(value: string | string[] | undefined): number | undefined | null {
  if (value === undefined) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(String(value));
  return m ? Number(m[1]) * TIMEOUT_UNITS[m[2]!]! : null;
}

/** The protocol's mapping for an HTTP status that came without a gRPC status. */
export function fromHttpStatus(code: number): status {
  switch (code) {
    case 400:
      return status.INTERNAL;
    case 401:
      return status.UNAUTHENTICATED;
    case 403:
      return status.PERMISSION_DENIED;
    case 404:
      return status.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return status.UNAVAILABLE;
    default:
      return status.UNKNOWN;
  }
}

/** grpc-message: %XX sequences are UTF-8 bytes; anything malformed is kept as it came. */
export function percentDecode(message: string): string {
  if (!message.includes('%')) return message;
  try {
    return decodeURIComponent(message);
  } catch {
    return message;
  }
}
