'use strict'
// Replacement for node-postgres's packages/pg/test/suite.js, installed by
// bench/client-suites/setup.sh. Same queue and output as upstream, except that a
// failing or timed-out test no longer ends the process (upstream calls
// process.exit(-1) at the first failure, which hides every later test of the file):
// it is recorded, the exit code is set to 1 and the next test runs. Every result is
// also appended as a JSON line to $CS_RESULTS (file, test, status, error). When the
// queue has drained, the process is ended after 5 s if something (a client a test left
// connected) still holds it open: upstream it would hang until the harness's timeout.
const async = require('async')
const fs = require('fs')
const path = require('path')

const file = path.relative(path.join(__dirname, '..'), process.argv[1])
const native = process.argv.includes('native')
function record(name, status, err) {
  if (!process.env.CS_RESULTS) return
  const error = err ? String((err && err.stack) || err).split('\n').slice(0, 3).join(' | ') : undefined
  fs.appendFileSync(process.env.CS_RESULTS, JSON.stringify({ file, native, test: name, status, error }) + '\n')
}

class Test {
  constructor(name, cb) {
    this.name = name
    this.action = cb
    this.timeout = 5000
  }

  run(cb) {
    try {
      this._run(cb)
    } catch (e) {
      cb(e)
    }
  }

  _run(cb) {
    if (!this.action) {
      console.log(`${this.name} skipped`)
      return cb()
    }
    if (!this.action.length) {
      const result = this.action.call(this)
      if (!(result || 0).then) {
        return cb()
      }
      result.then(() => cb()).catch((err) => cb(err || new Error('Unhandled promise rejection')))
    } else {
      this.action(cb)
    }
  }
}

class Suite {
  constructor(name) {
    console.log('')
    this._queue = async.queue(this.run.bind(this), 1)
    this._queue.drain = () => {
      clearTimeout(this._exitTimer)
      this._exitTimer = setTimeout(() => {
        console.log('\n(harness: all tests done, process still held open after 5 s: exiting)')
        process.exit()
      }, 5000)
      this._exitTimer.unref()
    }
  }

  run(test, cb) {
    clearTimeout(this._exitTimer)
    process.stdout.write('  ' + test.name + ' ')
    if (!test.action) {
      process.stdout.write('? - SKIPPED\n')
      record(test.name, 'skip')
      return cb()
    }
    let settled = false
    const finish = (err) => {
      if (settled) return
      settled = true
      clearTimeout(tid)
      if (err) {
        process.stdout.write(`FAILED!\n\n${err.stack || err}\n`)
        record(test.name, 'fail', err)
        process.exitCode = 1
      } else {
        process.stdout.write('✔\n')
        record(test.name, 'pass')
      }
      cb()
    }
    const tid = setTimeout(() => finish(new Error(`test: ${test.name} did not complete withint ${test.timeout}ms`)), test.timeout)
    test.run(finish)
  }

  test(name, cb) {
    const test = new Test(name, cb)
    this._queue.push(test)
  }
}

module.exports = Suite
