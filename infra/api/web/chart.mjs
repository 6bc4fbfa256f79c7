// ECharts on the server: reads a JSON list of {option, width, height} on stdin and writes a JSON list
// of SVG strings, so documents (the monthly bulletin) draw their charts with the same library as the
// pages, without a browser. Run by infra/bulletin.py with Node.
import * as echarts from "echarts";

const input = JSON.parse(await new Promise(resolve => {
  let text = "";
  process.stdin.on("data", chunk => { text += chunk; });
  process.stdin.on("end", () => resolve(text));
}));
const svgs = input.map(({ option, width, height }) => {
  const chart = echarts.init(null, null, { renderer: "svg", ssr: true, width, height });
  chart.setOption({ animation: false, ...option });
  const svg = chart.renderToSVGString();
  chart.dispose();
  return svg;
});
process.stdout.write(JSON.stringify(svgs));
