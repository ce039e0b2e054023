/**
 * What a stream session writes to: a WebSocket (ws's WebSocket fits as is) or a Server-Sent Events response
 * (src/sse/sse-transport.ts). The session speaks in protocol frames (docs/stream.md); a transport turns them
 * into its own wire format.
 */
export interface StreamTransport {
  /** Bytes written and not yet taken by the peer (the slow-consumer and buffer-budget bounds read it). */
  readonly bufferedAmount: number;
  /** Writes one frame; `cb` runs once it has left the process (or with an error when the peer is gone). */
  send(text: string, cb?: (err?: Error) => void): void;
  /** Ends the stream with a close code and a reason (`SLUICE_ERR_…: message`). */
  close(code: number, reason: string): void;
  /** Drops the connection at once. */
  terminate(): void;
  /** A keep-alive; the peer proves it is there by answering (WebSocket pong) or the write fails (SSE). */
  ping(): void;
}
