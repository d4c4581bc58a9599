/**
 * CPU time used so far, ms: this thread's where Node can say (`process.threadCpuUsage`, newer lines), else the
 * process's (loopwatch's own threads mostly sleep, so it is close). About a microsecond a call.
 */
const threadUsage = (process as { threadCpuUsage?: () => NodeJS.CpuUsage }).threadCpuUsage?.bind(process);

export function threadCpuMs(): number {
  const u = threadUsage ? threadUsage() : process.cpuUsage();
  return (u.user + u.system) / 1000;
}
