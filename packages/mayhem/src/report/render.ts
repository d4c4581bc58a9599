/** The report in the format asked for. */
import { renderHtml } from './html.js';
import { renderJson } from './json.js';
import { renderMarkdown } from './markdown.js';
import type { ReportModel } from './model.js';

export type ReportFormat = 'md' | 'html' | 'json';

export function renderReport(m: ReportModel, format: ReportFormat): string {
  return format === 'html' ? renderHtml(m) : format === 'json' ? renderJson(m) : renderMarkdown(m);
}
