"""What the web page needs, without Gradio: limits, state at start, input checks, the render job, previews."""
