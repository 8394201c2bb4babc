// A token bucket: `rate` tokens a second, at most `burst` kept. Time is passed in (ms), so it is
// pure and testable; the caller owns any timer.
export class TokenBucket {
  private tokens: number
  private at: number

  constructor(
    public rate: number,
    public burst: number,
    now = Date.now(),
  ) {
    this.tokens = burst
    this.at = now
  }

  /** Change the rate and burst (a reload); tokens already earned are kept, up to the new burst. */
  configure(rate: number, burst: number, now = Date.now()): void {
    this.refill(now)
    this.rate = rate
    this.burst = burst
    if (this.tokens > burst) this.tokens = burst
  }

  private refill(now: number): void {
    if (now > this.at) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.rate) / 1000)
      this.at = now
    }
  }

  /** Whether one token can be taken now (nothing is taken). */
  available(now = Date.now()): boolean {
    this.refill(now)
    return this.tokens >= 1
  }

  /** Take one token if there is one. */
  take(now = Date.now()): boolean {
    this.refill(now)
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }

  /** Milliseconds until one token is there (0: now). */
  msUntilToken(now = Date.now()): number {
    this.refill(now)
    if (this.tokens >= 1) return 0
    return Math.ceil(((1 - this.tokens) * 1000) / this.rate)
  }

  /** Full (no token taken that is not earned back): a bucket in this state may be forgotten. */
  full(now = Date.now()): boolean {
    this.refill(now)
    return this.tokens >= this.burst
  }
}
